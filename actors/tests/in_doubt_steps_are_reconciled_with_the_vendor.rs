//! A send whose outcome is unknown is looked up at the vendor before it is
//! declared in doubt. Against local servers standing in for Gmail, Slack and
//! Twilio, which record what they are sent and answer lookups from that
//! record:
//! - given a send that reaches the vendor but is answered after the
//!   connector's timeout, when the vendor's lookup finds it (Gmail by the
//!   `Message-ID` derived from the step, Slack by the post's metadata,
//!   Twilio by number, body and time), then the step and the run succeed
//!   with what the vendor reports, and the vendor saw one send;
//! - when the lookup finds nothing, then the run fails `in_doubt`, naming
//!   the step and saying the vendor has no record of it; one send;
//! - when the lookup fails (HTTP 500), then the run fails `in_doubt`, saying
//!   it could not be looked up; one send;
//! - given a step's stream left with only its `RunStarted` (a crash mid-send),
//!   when the run is tried again, then the step is looked up instead of sent:
//!   found, it succeeds; not found, the run fails `in_doubt`. Nothing is sent.
//! - given a step's stream left ending with `RunFailed{will_retry}` (a crash
//!   while it waited to retry a request the vendor refused without effect),
//!   when the run is tried again, then the step is sent again, once, and
//!   nothing is looked up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use neonhub_actors::{
    AgentOptions, Connector, ConnectorOptions, Gmail, RetryPolicy, RunOutcome, Secret, Slack,
};
use neonhub_events::{
    Codec, ErrorKind, ExpectedRevision, Metadata, Revision, RunError, RunEvent, RunFailed, RunId,
    RunKind, RunStarted, SharedStore, Timestamp,
};
use neonhub_test_support as support;
use neonhub_test_support::Proxy;
use neonhub_test_support::http::{Seen, TestServer};
use serde_json::{Value, json};
use uuid::Uuid;

/// How late a send is answered: far past the connector's timeout.
const LATE: Duration = Duration::from_secs(3);

/// The credentials the connectors are given; no message may hold them.
const GMAIL_TOKEN: &str = "gmail-token-0123";
const SLACK_TOKEN: &str = "xoxb-slack-token-0123";

/// What the vendor's lookup does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// Answers from what the vendor recorded.
    Answers,
    /// Answers as if it recorded nothing (the send was lost on the way).
    Forgets,
    /// Answers HTTP 500.
    Fails,
}

/// A local vendor: the server, and what it recorded (one JSON value per
/// message sent to it, in the vendor's own shape).
struct Vendor {
    server: TestServer,
    records: Arc<Mutex<Vec<Value>>>,
}

impl Vendor {
    fn start(
        lookup: Lookup,
        answer: impl Fn(&Seen, &mut Vec<Value>, Lookup) -> (u16, String, Duration)
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&records);
        let server = TestServer::start_delaying(move |request| {
            answer(request, &mut shared.lock().unwrap(), lookup)
        });
        Self { server, records }
    }

    fn sends(&self, is_send: fn(&Seen) -> bool) -> Vec<Seen> {
        self.server.seen().into_iter().filter(is_send).collect()
    }
}

fn now() -> Duration {
    Duration::from_micros(Timestamp::now().as_micros())
}

/// `%XX` and `+` decoded.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("a %XX escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8")
}

/// The value of `name` in a query string or a form body.
fn param(encoded: &str, name: &str) -> Option<String> {
    encoded.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

fn not_found() -> (u16, String, Duration) {
    (
        404,
        json!({"error": "no such endpoint"}).to_string(),
        Duration::ZERO,
    )
}

fn server_error() -> (u16, String, Duration) {
    (
        500,
        json!({"error": "backend error"}).to_string(),
        Duration::ZERO,
    )
}

// --- Gmail: messages carry a Message-ID; `q=rfc822msgid:<id>` finds them.

fn is_gmail_send(s: &Seen) -> bool {
    s.method == "POST" && s.path == "/users/me/messages/send"
}

fn is_gmail_lookup(s: &Seen) -> bool {
    s.method == "GET" && s.path == "/users/me/messages"
}

/// The RFC 2822 message a Gmail send carried.
fn gmail_message(send: &Seen) -> String {
    let body: Value = serde_json::from_str(&send.body).expect("a JSON body");
    let raw = URL_SAFE_NO_PAD
        .decode(body["raw"].as_str().expect("raw"))
        .expect("base64url");
    String::from_utf8(raw).expect("UTF-8")
}

fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        key.eq_ignore_ascii_case(name).then(|| value.to_owned())
    })
}

fn gmail_vendor(lookup: Lookup) -> Vendor {
    Vendor::start(lookup, |request, mailbox, lookup| {
        if is_gmail_send(request) {
            let id = format!("m{}", mailbox.len() + 1);
            let message_id = header(&gmail_message(request), "Message-ID");
            let sent = json!({"id": id, "threadId": format!("t-{id}"), "labelIds": ["SENT"]});
            if lookup != Lookup::Forgets {
                mailbox.push(json!({"message_id": message_id, "message": sent}));
            }
            (200, sent.to_string(), LATE)
        } else if is_gmail_lookup(request) {
            if lookup == Lookup::Fails {
                return server_error();
            }
            let q = param(&request.query, "q").unwrap_or_default();
            let wanted = q.strip_prefix("rfc822msgid:").map(|id| format!("<{id}>"));
            let found: Vec<Value> = mailbox
                .iter()
                .filter(|m| wanted.is_some() && m["message_id"].as_str() == wanted.as_deref())
                .map(|m| json!({"id": m["message"]["id"], "threadId": m["message"]["threadId"]}))
                .collect();
            let answer = if found.is_empty() {
                json!({"resultSizeEstimate": 0})
            } else {
                json!({"messages": found, "resultSizeEstimate": found.len()})
            };
            (200, answer.to_string(), Duration::ZERO)
        } else {
            not_found()
        }
    })
}

// --- Slack: posts carry metadata; `conversations.history` returns it with
// `include_all_metadata=true`, for messages at or after `oldest`.

fn is_slack_post(s: &Seen) -> bool {
    s.method == "POST" && s.path == "/chat.postMessage"
}

fn is_slack_lookup(s: &Seen) -> bool {
    s.method == "GET" && s.path == "/conversations.history"
}

fn slack_ts(at: Duration) -> String {
    format!("{}.{:06}", at.as_secs(), at.subsec_micros())
}

fn slack_vendor(lookup: Lookup) -> Vendor {
    Vendor::start(lookup, |request, history, lookup| {
        if is_slack_post(request) {
            let post: Value = serde_json::from_str(&request.body).expect("a JSON body");
            let ts = slack_ts(now());
            let mut message = json!({"type": "message", "text": post["text"], "ts": ts});
            if !post["metadata"].is_null() {
                message["metadata"] = post["metadata"].clone();
            }
            if lookup != Lookup::Forgets {
                history.push(json!({"channel": post["channel"], "message": message}));
            }
            let answer =
                json!({"ok": true, "channel": post["channel"], "ts": ts, "message": message});
            (200, answer.to_string(), LATE)
        } else if is_slack_lookup(request) {
            if lookup == Lookup::Fails {
                return server_error();
            }
            let channel = param(&request.query, "channel").unwrap_or_default();
            let oldest: f64 = param(&request.query, "oldest")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0.0);
            let metadata = param(&request.query, "include_all_metadata").as_deref() == Some("true");
            let messages: Vec<Value> = history
                .iter()
                .rev()
                .filter(|m| m["channel"] == json!(channel))
                .map(|m| m["message"].clone())
                .filter(|m| m["ts"].as_str().unwrap().parse::<f64>().unwrap() >= oldest)
                .map(|mut m| {
                    if !metadata {
                        m.as_object_mut().unwrap().remove("metadata");
                    }
                    m
                })
                .collect();
            let answer = json!({"ok": true, "messages": messages, "has_more": false});
            (200, answer.to_string(), Duration::ZERO)
        } else {
            not_found()
        }
    })
}

// --- Twilio: messages are listed by To and From, with a body and a
// creation date (RFC 2822).

fn is_twilio_send(s: &Seen) -> bool {
    s.method == "POST" && s.path == "/Accounts/AC0123/Messages.json"
}

fn is_twilio_lookup(s: &Seen) -> bool {
    s.method == "GET" && s.path == "/Accounts/AC0123/Messages.json"
}

fn rfc2822(at: Duration) -> String {
    DateTime::<Utc>::from_timestamp_micros(at.as_micros() as i64)
        .unwrap()
        .to_rfc2822()
}

fn twilio_message(sid: &str, to: &str, from: &str, body: &str) -> Value {
    json!({
        "sid": sid, "status": "queued", "to": to, "from": from, "body": body,
        "date_created": rfc2822(now()), "date_sent": null,
    })
}

/// Twilio answering every send [`LATE`].
fn twilio_vendor(lookup: Lookup) -> Vendor {
    twilio_answering_after(LATE, lookup)
}

/// Twilio answering every send `after` this long.
fn twilio_answering_after(after: Duration, lookup: Lookup) -> Vendor {
    Vendor::start(lookup, move |request, messages, lookup| {
        if is_twilio_send(request) {
            let field = |name| param(&request.body, name).unwrap_or_default();
            let sid = format!("SM{:032}", messages.len() + 1);
            let message = twilio_message(&sid, &field("To"), &field("From"), &field("Body"));
            if lookup != Lookup::Forgets {
                messages.push(message.clone());
            }
            (201, message.to_string(), after)
        } else if is_twilio_lookup(request) {
            if lookup == Lookup::Fails {
                return server_error();
            }
            let to = param(&request.query, "To");
            let from = param(&request.query, "From");
            let listed: Vec<Value> = messages
                .iter()
                .rev()
                .filter(|m| to.is_none() || m["to"].as_str() == to.as_deref())
                .filter(|m| from.is_none() || m["from"].as_str() == from.as_deref())
                .cloned()
                .collect();
            let answer = json!({"messages": listed, "next_page_uri": null, "page": 0});
            (200, answer.to_string(), Duration::ZERO)
        } else {
            not_found()
        }
    })
}

// --- Running a send through the proxy agent.

/// A short timeout, and retries that would resend if anything did.
fn eager() -> ConnectorOptions {
    ConnectorOptions {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    }
}

fn gmail_send() -> Value {
    json!({"to": "ada@example.com", "subject": "Once", "body": "Only once."})
}

fn slack_post() -> Value {
    json!({"channel": "C0123", "text": "only once"})
}

fn sms() -> Value {
    json!({"to": "+15550001111", "body": "only once"})
}

/// Runs the proxy agent making one call, under `parent` if given.
async fn run(
    store: &SharedStore,
    connector: impl Connector,
    call: (&str, &str, Value),
    parent: Option<RunId>,
) -> RunOutcome {
    let orchestrator =
        support::proxy_orchestrator(store, AgentOptions::default(), connector, eager());
    let (connector, operation, input) = call;
    let mut submit = Proxy::submit(connector, operation, input);
    if let Some(parent) = parent {
        submit = submit.with_run_id(parent);
    }
    orchestrator.send(submit).await.unwrap().unwrap()
}

/// The one step of `outcome`'s run, and its events' shape.
async fn the_step(store: &SharedStore, outcome: &RunOutcome) -> (RunId, Vec<String>) {
    let children = support::child_runs(store, outcome.run_id).await;
    assert_eq!(children.len(), 1, "one step: {children:?}");
    let shape = support::shape(&support::events(store, children[0]).await);
    (children[0], shape)
}

/// The run's in-doubt message, after checking it names `key` and holds no
/// credential.
fn in_doubt_message(outcome: &RunOutcome, key: &str) -> String {
    let error = outcome.result.clone().expect_err("the run should fail");
    assert_eq!(error.kind.as_str(), "in_doubt", "{}", error.message);
    assert!(error.message.contains(key), "{}", error.message);
    for secret in [GMAIL_TOKEN, SLACK_TOKEN, "twilio-token-0123"] {
        assert!(!error.message.contains(secret), "{}", error.message);
    }
    error.message
}

fn gmail_at(vendor: &Vendor) -> Gmail {
    Gmail::live(&vendor.server.base_url, Secret::new(GMAIL_TOKEN))
}

fn slack_at(vendor: &Vendor) -> Slack {
    Slack::live(&vendor.server.base_url, Secret::new(SLACK_TOKEN))
}

fn twilio_at(vendor: &Vendor) -> neonhub_actors::Twilio {
    support::twilio_at(&vendor.server.base_url)
}

/// A send answered after the connector's timeout, to one of the three
/// vendors: its stand-in, the call, the step's key, and which requests are
/// its sends and its lookups.
#[derive(Clone, Copy)]
enum Late {
    Gmail,
    Slack,
    Sms,
}

impl Late {
    fn vendor(self, lookup: Lookup) -> Vendor {
        match self {
            Late::Gmail => gmail_vendor(lookup),
            Late::Slack => slack_vendor(lookup),
            Late::Sms => twilio_vendor(lookup),
        }
    }

    async fn run(self, store: &SharedStore, vendor: &Vendor) -> RunOutcome {
        match self {
            Late::Gmail => {
                run(
                    store,
                    gmail_at(vendor),
                    ("gmail", "send", gmail_send()),
                    None,
                )
                .await
            }
            Late::Slack => {
                let call = ("slack", "post_message", slack_post());
                run(store, slack_at(vendor), call, None).await
            }
            Late::Sms => {
                run(
                    store,
                    twilio_at(vendor),
                    ("twilio", "send_sms", sms()),
                    None,
                )
                .await
            }
        }
    }

    fn key(self) -> &'static str {
        match self {
            Late::Gmail => "gmail.send#1",
            Late::Slack => "slack.post_message#1",
            Late::Sms => "twilio.send_sms#1",
        }
    }

    fn is_send(self) -> fn(&Seen) -> bool {
        match self {
            Late::Gmail => is_gmail_send,
            Late::Slack => is_slack_post,
            Late::Sms => is_twilio_send,
        }
    }

    fn is_lookup(self) -> fn(&Seen) -> bool {
        match self {
            Late::Gmail => is_gmail_lookup,
            Late::Slack => is_slack_lookup,
            Late::Sms => is_twilio_lookup,
        }
    }
}

/// Given a vendor whose lookup does not find the send (`Forgets`) or fails
/// (`Fails`), when a send to it is answered late: the run ends `in_doubt`,
/// its message naming the step and saying each of `says`; the vendor got
/// the send once and one lookup, nothing was resent; the step's stream ends
/// `in_doubt`.
async fn a_late_send_not_found_ends_in_doubt(late: Late, lookup: Lookup, says: &[&str]) {
    let (_dir, store) = support::store();
    let vendor = late.vendor(lookup);

    let outcome = late.run(&store, &vendor).await;

    let message = in_doubt_message(&outcome, late.key());
    for said in says {
        assert!(message.contains(said), "{message}");
    }
    assert_eq!(
        vendor.sends(late.is_send()).len(),
        1,
        "sent once, never resent"
    );
    assert_eq!(vendor.sends(late.is_lookup()).len(), 1, "it was looked up");
    let (_, shape) = the_step(&store, &outcome).await;
    assert_eq!(shape, ["started#1", "failed#1(in_doubt)"]);
}

// --- Gmail

#[actix::test]
async fn a_late_gmail_send_found_by_its_message_id_succeeds() {
    let (_dir, store) = support::store();
    let vendor = gmail_vendor(Lookup::Answers);

    let outcome = run(
        &store,
        gmail_at(&vendor),
        ("gmail", "send", gmail_send()),
        None,
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(output["id"], json!("m1"), "{output}");
    assert_eq!(output["threadId"], json!("t-m1"), "{output}");
    assert_eq!(output["reconciled"], json!(true), "{output}");
    let sends = vendor.sends(is_gmail_send);
    assert_eq!(sends.len(), 1, "the message was sent more than once");
    let (step, shape) = the_step(&store, &outcome).await;
    assert_eq!(
        header(&gmail_message(&sends[0]), "Message-ID"),
        Some(format!("<{step}@neonhub>")),
        "the send carries the Message-ID derived from its step"
    );
    let lookups = vendor.sends(is_gmail_lookup);
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        param(&lookups[0].query, "q"),
        Some(format!("rfc822msgid:{step}@neonhub"))
    );
    assert_eq!(shape, ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn a_late_gmail_send_the_vendor_has_no_record_of_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(Late::Gmail, Lookup::Forgets, &["has no record of it"])
        .await;
}

#[actix::test]
async fn a_late_gmail_send_that_cannot_be_looked_up_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(
        Late::Gmail,
        Lookup::Fails,
        &["could not be looked up", "500"],
    )
    .await;
}

// --- Slack

#[actix::test]
async fn a_late_slack_post_found_by_its_metadata_succeeds() {
    let (_dir, store) = support::store();
    let vendor = slack_vendor(Lookup::Answers);
    let before = now();

    let outcome = run(
        &store,
        slack_at(&vendor),
        ("slack", "post_message", slack_post()),
        None,
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(output["channel"], json!("C0123"), "{output}");
    assert_eq!(output["reconciled"], json!(true), "{output}");
    let posts = vendor.sends(is_slack_post);
    assert_eq!(posts.len(), 1, "the message was posted more than once");
    let recorded = vendor.records.lock().unwrap()[0]["message"].clone();
    assert_eq!(output["ts"], recorded["ts"], "{output}");
    let (step, shape) = the_step(&store, &outcome).await;
    let post: Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(
        post["metadata"],
        json!({"event_type": "neonhub_step", "event_payload": {"step_run_id": step.to_string()}}),
        "the post carries its step in its metadata"
    );
    let lookups = vendor.sends(is_slack_lookup);
    assert_eq!(lookups.len(), 1);
    let oldest: f64 = param(&lookups[0].query, "oldest").unwrap().parse().unwrap();
    assert!(
        oldest <= before.as_secs_f64(),
        "the history is read from before the step started"
    );
    assert_eq!(shape, ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn a_late_slack_post_the_vendor_has_no_record_of_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(Late::Slack, Lookup::Forgets, &["has no record of it"])
        .await;
}

#[actix::test]
async fn a_late_slack_post_that_cannot_be_looked_up_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(Late::Slack, Lookup::Fails, &["could not be looked up"])
        .await;
}

// --- Twilio

#[actix::test]
async fn a_late_sms_found_among_the_messages_to_its_number_succeeds() {
    let (_dir, store) = support::store();
    let vendor = twilio_vendor(Lookup::Answers);

    let outcome = run(
        &store,
        twilio_at(&vendor),
        ("twilio", "send_sms", sms()),
        None,
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(output["sid"], json!(format!("SM{:032}", 1)), "{output}");
    assert_eq!(output["body"], json!("only once"), "{output}");
    assert_eq!(output["reconciled"], json!(true), "{output}");
    assert_eq!(
        vendor.sends(is_twilio_send).len(),
        1,
        "the SMS was sent more than once"
    );
    let lookups = vendor.sends(is_twilio_lookup);
    assert_eq!(lookups.len(), 1);
    let query = &lookups[0].query;
    assert_eq!(
        param(query, "To").as_deref(),
        Some("+15550001111"),
        "{query}"
    );
    assert_eq!(
        param(query, "From").as_deref(),
        Some("+15550000000"),
        "{query}"
    );
    let since = param(query, "DateSent>").unwrap_or_default();
    assert_eq!(since.len(), "2024-01-31".len(), "{query}");
    let (_, shape) = the_step(&store, &outcome).await;
    assert_eq!(shape, ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn a_late_sms_the_vendor_has_no_record_of_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(Late::Sms, Lookup::Forgets, &["has no record of it"]).await;
}

#[actix::test]
async fn a_late_sms_that_cannot_be_looked_up_ends_in_doubt() {
    a_late_send_not_found_ends_in_doubt(Late::Sms, Lookup::Fails, &["could not be looked up"])
        .await;
}

// --- A crash mid-send: the step's stream holds only its `RunStarted`.

/// Appends what a crash mid-request leaves: step `key` of `parent` started
/// (at `started_at`) with `input`, and no outcome.
async fn leave_started(
    store: &SharedStore,
    parent: RunId,
    call: (&str, &str, &Value),
    key: &str,
) -> RunId {
    let run_id = RunId::from_uuid(Uuid::new_v5(parent.as_uuid(), key.as_bytes()));
    let (target, operation, input) = call;
    let started = RunEvent::Started(RunStarted {
        run_id,
        kind: RunKind::Connector,
        target: target.into(),
        operation: operation.into(),
        intent: None,
        input: input.clone(),
        attempt: 1,
        parent_run_id: Some(parent),
        correlation_id: *parent.as_uuid(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: Some(key.into()),
        resumed: false,
        node: None,
        paused_micros: 0,
    });
    let data = Codec::new().encode(&started, Metadata::default()).unwrap();
    store
        .append(&run_id.stream(), ExpectedRevision::NoStream, vec![data])
        .await
        .unwrap();
    run_id
}

#[actix::test]
async fn a_step_stopped_while_it_waited_to_retry_is_sent_again_without_a_lookup() {
    let (_dir, store) = support::store();
    let vendor = twilio_answering_after(Duration::ZERO, Lookup::Answers);
    let parent = RunId::new();
    let step = leave_started(
        &store,
        parent,
        ("twilio", "send_sms", &sms()),
        "twilio.send_sms#1",
    )
    .await;
    // Twilio answered 429; the step recorded that and was waiting to retry.
    let refused = RunEvent::Failed(RunFailed {
        run_id: step,
        attempt: 1,
        error: RunError::new(ErrorKind::RateLimited, "twilio: 429 Too Many Requests"),
        will_retry: true,
        retry_at: None,
        duration_micros: 1_000,
        finished_at: Timestamp::now(),
    });
    let data = Codec::new().encode(&refused, Metadata::default()).unwrap();
    store
        .append(
            &step.stream(),
            ExpectedRevision::Exact(Revision(0)),
            vec![data],
        )
        .await
        .unwrap();

    let outcome = run(
        &store,
        twilio_at(&vendor),
        ("twilio", "send_sms", sms()),
        Some(parent),
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(
        output.get("reconciled"),
        None,
        "sent, not reconciled: {output}"
    );
    assert_eq!(vendor.sends(is_twilio_send).len(), 1, "sent once");
    assert_eq!(
        vendor.sends(is_twilio_lookup).len(),
        0,
        "nothing was in doubt, so nothing was looked up"
    );
    let events = support::events(&store, step).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(rate_limited, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
    let RunEvent::Started(resumed) = &events[2] else {
        unreachable!("the shape says started#2")
    };
    assert!(resumed.resumed, "a resume of the step: {resumed:?}");
}

#[actix::test]
async fn a_crashed_sms_step_the_vendor_has_is_recorded_sent_without_resending() {
    let (_dir, store) = support::store();
    let vendor = twilio_vendor(Lookup::Answers);
    let parent = RunId::new();
    let step = leave_started(
        &store,
        parent,
        ("twilio", "send_sms", &sms()),
        "twilio.send_sms#1",
    )
    .await;
    // The request the crash cut off had reached Twilio.
    vendor.records.lock().unwrap().push(twilio_message(
        "SM-before-the-crash",
        "+15550001111",
        "+15550000000",
        "only once",
    ));

    let outcome = run(
        &store,
        twilio_at(&vendor),
        ("twilio", "send_sms", sms()),
        Some(parent),
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(output["sid"], json!("SM-before-the-crash"), "{output}");
    assert_eq!(output["reconciled"], json!(true), "{output}");
    assert_eq!(
        vendor.sends(is_twilio_send).len(),
        0,
        "a send in doubt was sent again"
    );
    assert_eq!(vendor.sends(is_twilio_lookup).len(), 1);
    let events = support::events(&store, step).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn a_crashed_gmail_step_is_found_by_the_message_id_it_was_sent_with() {
    let (_dir, store) = support::store();
    let vendor = gmail_vendor(Lookup::Answers);
    let parent = RunId::new();
    let step = leave_started(
        &store,
        parent,
        ("gmail", "send", &gmail_send()),
        "gmail.send#1",
    )
    .await;
    // The request the crash cut off had reached Gmail with the step's id.
    vendor.records.lock().unwrap().push(json!({
        "message_id": format!("<{step}@neonhub>"),
        "message": {"id": "m-before-the-crash", "threadId": "t0"},
    }));

    let outcome = run(
        &store,
        gmail_at(&vendor),
        ("gmail", "send", gmail_send()),
        Some(parent),
    )
    .await;

    let output = outcome.result.clone().expect("the run should succeed");
    assert_eq!(output["id"], json!("m-before-the-crash"), "{output}");
    assert_eq!(
        vendor.sends(is_gmail_send).len(),
        0,
        "a send in doubt was sent again"
    );
    let events = support::events(&store, step).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn a_crashed_slack_step_the_vendor_has_no_record_of_ends_in_doubt_unsent() {
    let (_dir, store) = support::store();
    let vendor = slack_vendor(Lookup::Answers);
    let parent = RunId::new();
    let key = "slack.post_message#1";
    let step = leave_started(
        &store,
        parent,
        ("slack", "post_message", &slack_post()),
        key,
    )
    .await;

    let outcome = run(
        &store,
        slack_at(&vendor),
        ("slack", "post_message", slack_post()),
        Some(parent),
    )
    .await;

    let message = in_doubt_message(&outcome, key);
    assert!(
        message.contains("found started without an outcome"),
        "{message}"
    );
    assert!(message.contains("has no record of it"), "{message}");
    assert_eq!(
        vendor.sends(is_slack_post).len(),
        0,
        "a post in doubt was sent again"
    );
    assert_eq!(vendor.sends(is_slack_lookup).len(), 1, "it was looked up");
    let events = support::events(&store, step).await;
    assert_eq!(support::shape(&events), ["started#1", "failed#1(in_doubt)"]);
}
