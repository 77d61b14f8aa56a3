//! Given live connectors whose server rejects the credentials and echoes
//! them back, when runs call every connector, then no credential appears in
//! any stored event (payload or metadata), in any outcome or error message,
//! or in the printed configuration.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use neonhub_actors::{ConnectorsConfig, OrchestratorBuilder, Secret, SubmitRun};
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::json;

const GMAIL_TOKEN: &str = "ya29.gmail-secret-0001";
const SLACK_TOKEN: &str = "xoxb-slack-secret-0002";
const TWILIO_TOKEN: &str = "twilio-secret-0003";

#[actix::test]
async fn credentials_never_reach_events_outcomes_or_messages() {
    let (_dir, store) = support::store();
    // A hostile server: every answer quotes the auth header it received.
    let server = TestServer::start(|req| {
        let echoed = req.authorization.clone().unwrap_or_default();
        (
            401,
            json!({"error": "invalid_auth", "you_sent": echoed, "ok": false}).to_string(),
        )
    });
    let config = ConnectorsConfig::from_vars(|name| {
        let base = server.base_url.clone();
        match name {
            "NEONHUB_GMAIL_TOKEN" => Some(GMAIL_TOKEN.to_owned()),
            "NEONHUB_GMAIL_BASE_URL" => Some(base),
            "NEONHUB_SLACK_TOKEN" => Some(SLACK_TOKEN.to_owned()),
            "NEONHUB_SLACK_BASE_URL" => Some(base),
            "NEONHUB_TWILIO_ACCOUNT_SID" => Some("AC42".to_owned()),
            "NEONHUB_TWILIO_AUTH_TOKEN" => Some(TWILIO_TOKEN.to_owned()),
            "NEONHUB_TWILIO_FROM" => Some("+15005550006".to_owned()),
            "NEONHUB_TWILIO_BASE_URL" => Some(base),
            _ => None,
        }
    })
    .unwrap();
    assert_eq!(config.gmail.token, Some(Secret::new(GMAIL_TOKEN)));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .builtin_connectors(&config)
        .unwrap()
        .start()
        .unwrap();

    let runs = [
        SubmitRun::intent(
            "email.send",
            json!({"to": "a@example.com", "subject": "s", "body": "b"}),
        ),
        SubmitRun::intent("slack.notify", json!({"channel": "C1", "text": "t"})),
        SubmitRun::intent("sms.send", json!({"to": "+15005550006", "body": "b"})),
    ];
    let mut printed = format!("{config:?}");
    for run in runs {
        let outcome = orchestrator.send(run).await.unwrap().unwrap();
        let error = outcome.result.clone().unwrap_err();
        assert!(
            error.message.contains("401") || error.message.contains("invalid_auth"),
            "{error}"
        );
        printed.push_str(&format!("{outcome:?} {error}"));
    }
    assert_eq!(
        server.hits(),
        3,
        "each call reached the server (with its credentials)"
    );

    let twilio_basic = STANDARD.encode(format!("AC42:{TWILIO_TOKEN}"));
    let stored = support::all(&store).await;
    assert_eq!(
        stored.len(),
        12,
        "three agent runs and three child runs, two events each"
    );
    for secret in [
        GMAIL_TOKEN,
        SLACK_TOKEN,
        TWILIO_TOKEN,
        twilio_basic.as_str(),
    ] {
        assert!(!printed.contains(secret), "{secret} leaked into {printed}");
        for event in &stored {
            let payload = String::from_utf8_lossy(&event.payload);
            assert!(
                !payload.contains(secret),
                "{secret} leaked into an event payload: {payload}"
            );
            assert!(!format!("{:?}", event.metadata).contains(secret));
        }
    }
    // The failure itself was recorded, scrubbed.
    let all_payloads: String = stored
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    assert!(
        all_payloads.contains("***"),
        "the echoed credential was replaced"
    );
    server.stop().await;
}
