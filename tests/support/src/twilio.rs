//! Twilio as the root scenarios meet it: `neonhub serve` configured for live
//! Twilio at a local URL ([`live_twilio`]), and a fake Messages API
//! ([`fake_twilio`]) that keeps every SMS it accepted, whether or not its
//! answer ever went out, and lists them to a lookup as the real one does
//! (how the connector reconciles a send in doubt).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Reply as Answer, Seen, TestServer};

/// The sending number [`live_twilio`] configures.
pub const FROM: &str = "+15550000000";

/// Configures a `neonhub` child for live Twilio (Messages and Lookup) at
/// `base_url`, with made-up credentials; for [`crate::service::ServeProcess::spawn_with`].
pub fn live_twilio(base_url: &str) -> impl Fn(&mut Command) + '_ {
    move |command: &mut Command| {
        command
            .env_remove("NEONHUB_CONNECTORS")
            .env("NEONHUB_TWILIO_ACCOUNT_SID", "AC0123")
            .env("NEONHUB_TWILIO_AUTH_TOKEN", "twilio-token-0123")
            .env("NEONHUB_TWILIO_FROM", FROM)
            .env("NEONHUB_TWILIO_BASE_URL", base_url)
            .env("NEONHUB_TWILIO_LOOKUP_BASE_URL", base_url);
    }
}

/// One SMS a request asks Twilio to send: its form fields.
#[derive(Clone, Debug, Default)]
pub struct Sms {
    /// `To`.
    pub to: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `Body`.
    pub body: Option<String>,
}

impl Sms {
    /// The SMS `seen` asks to send, if it is a send (a POST to the Messages
    /// API with a form body).
    pub fn of(seen: &Seen) -> Option<Sms> {
        if seen.method != "POST" || !seen.path.ends_with("/Messages.json") {
            return None;
        }
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&seen.body).ok()?;
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Some(Sms {
            to: field("To"),
            from: field("From"),
            body: field("Body"),
        })
    }
}

/// Whether `seen` lists the messages sent (the connector's lookup).
pub fn is_lookup(seen: &Seen) -> bool {
    seen.method == "GET" && seen.path.ends_with("/Messages.json")
}

/// How [`fake_twilio`] treats one send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Keeps the SMS (a lookup lists it from now on) and answers 201 after
    /// this long: `Duration::MAX`-like delays stand for an answer that never
    /// comes.
    Accept(Duration),
    /// Answers 400 (a permanent refusal) and keeps nothing.
    Refuse,
    /// Answers 429 (Twilio's code 20429) with `Retry-After` of this many
    /// whole seconds, and keeps nothing: the vendor pacing us, a refusal
    /// that certainly had no effect.
    ComeBackIn(Duration),
}

/// A fake Twilio Messages API. A send is answered as `reply` says; an
/// accepted one gets the sid `SM<n>` (n from 1) and is kept; a lookup
/// answers at once with every SMS kept; anything else is a 404.
pub fn fake_twilio(reply: impl Fn(&Sms) -> Reply + Send + Sync + 'static) -> TestServer {
    let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();
    TestServer::start_replying(move |seen| {
        let mut accepted = accepted.lock().unwrap();
        if is_lookup(seen) {
            let page = json!({"messages": *accepted, "next_page_uri": null});
            return Answer::new(200, page.to_string());
        }
        let Some(sms) = Sms::of(seen) else {
            let missing = json!({"code": 20404, "message": "not a send"});
            return Answer::new(404, missing.to_string());
        };
        match reply(&sms) {
            Reply::Accept(after) => {
                let message = json!({
                    "sid": format!("SM{}", accepted.len() + 1), "status": "queued",
                    "to": sms.to, "from": sms.from, "body": sms.body,
                    "date_created": chrono::Utc::now().to_rfc2822(), "date_sent": null,
                });
                accepted.push(message.clone());
                Answer::new(201, message.to_string()).after(after)
            }
            Reply::Refuse => {
                let refused = json!({"code": 21211, "message": "refused by the fake"});
                Answer::new(400, refused.to_string())
            }
            Reply::ComeBackIn(wait) => {
                let paced = json!({"code": 20429, "message": "Too Many Requests"});
                Answer::new(429, paced.to_string())
                    .header("Retry-After", wait.as_secs().to_string())
            }
        }
    })
}

/// Submits run `run_id` of intent `sms.send` (to `+15550001111`, `body`)
/// to the service at `base` without waiting for it; asserts the 202.
pub async fn submit_sms(base: &str, run_id: &str, body: &str) {
    let accepted = reqwest::Client::new()
        .post(format!("{base}/v1/runs?wait=false"))
        .json(&json!({"intent": "sms.send", "run_id": run_id,
                      "input": {"to": "+15550001111", "body": body}}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
}

/// How many sends of `body` `vendor` received (accepted or not).
pub fn sends_of(vendor: &TestServer, body: &str) -> usize {
    vendor.count(|seen| Sms::of(seen).is_some_and(|sms| sms.body.as_deref() == Some(body)))
}
