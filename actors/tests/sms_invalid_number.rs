//! Given the sms agent and the mock Twilio connector, when a text is sent
//! to a number that is not E.164, then both the child run and the agent run
//! fail with a connector error, and a valid number succeeds.

use neonhub_actors::SubmitRun;
use neonhub_events::{ErrorKind, RunEvent};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn an_invalid_number_fails_the_run_with_a_connector_error() {
    let (_dir, store) = support::store();
    let orchestrator = support::mock_orchestrator(&store);

    let outcome = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "555-0100", "body": "hi"}),
        ))
        .await
        .unwrap()
        .unwrap();

    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connector);
    assert!(error.message.contains("E.164"), "{}", error.message);
    assert_eq!(
        support::shape(&support::events(&store, outcome.run_id).await),
        ["started#1", "failed#1(connector)"]
    );
    let children = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(children.len(), 1);
    let child_events = support::events(&store, children[0]).await;
    assert_eq!(
        support::shape(&child_events),
        ["started#1", "failed#1(connector)"]
    );
    let RunEvent::Started(s) = &child_events[0] else {
        panic!()
    };
    assert_eq!(
        (s.target.as_str(), s.operation.as_str()),
        ("twilio", "send_sms")
    );

    let ok = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "+15005550006", "topic": "Neon Boots"}),
        ))
        .await
        .unwrap()
        .unwrap();
    let output = ok.result.unwrap();
    assert_eq!(output["status"], json!("queued"));
    assert!(output["sid"].as_str().unwrap().starts_with("SM"));
}
