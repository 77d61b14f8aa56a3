//! Given the email agent and the mock Gmail connector, when an email run is
//! submitted, then the Gmail call is its own child run (kind connector,
//! target gmail, operation send, parent = the agent run, same correlation,
//! causation = the parent) inside the agent run, so the audit trail is a
//! tree; and the mock answers the same input with the same ids.

use neonhub_actors::SubmitRun;
use neonhub_events::{RunEvent, RunKind};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn a_connector_call_is_a_child_run_of_the_agent_run() {
    let (_dir, store) = support::store();
    let orchestrator = support::mock_orchestrator(&store);
    let input = json!({"to": "ada@example.com", "topic": "Neon Boots", "audience": "runners"});

    let outcome = orchestrator
        .send(SubmitRun::intent("email.send", input.clone()))
        .await
        .unwrap()
        .unwrap();

    let output = outcome.result.clone().unwrap();
    assert_eq!(output["to"], json!("ada@example.com"));
    assert_eq!(output["subject"], json!("Neon Boots, made for runners"));
    assert_eq!(output["message_id"].as_str().unwrap().len(), 16);

    let children = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(children.len(), 1);
    let child = children[0];
    let child_events = support::events(&store, child).await;
    assert_eq!(support::shape(&child_events), ["started#1", "succeeded#1"]);
    let RunEvent::Started(started) = &child_events[0] else {
        panic!()
    };
    assert_eq!(started.kind, RunKind::Connector);
    assert_eq!(started.target, "gmail");
    assert_eq!(started.operation, "send");
    assert_eq!(started.intent, None);
    assert_eq!(started.parent_run_id, Some(outcome.run_id));
    assert_eq!(started.correlation_id, outcome.correlation_id);
    assert_eq!(started.input["to"], json!("ada@example.com"));
    assert_eq!(
        started.input["subject"],
        json!("Neon Boots, made for runners")
    );
    let RunEvent::Succeeded(done) = &child_events[1] else {
        panic!()
    };
    assert_eq!(done.output["id"], output["message_id"]);
    for r in support::recorded(&store, child).await {
        assert_eq!(r.metadata.correlation_id, Some(outcome.correlation_id));
        assert_eq!(r.metadata.causation_id, Some(*outcome.run_id.as_uuid()));
    }

    // The tree in log order: agent started, child started, child done, agent done.
    let order: Vec<_> = support::all(&store)
        .await
        .iter()
        .map(|r| (r.stream.run_id().unwrap(), r.revision.0))
        .collect();
    assert_eq!(
        order,
        [
            (outcome.run_id, 0),
            (child, 0),
            (child, 1),
            (outcome.run_id, 1)
        ]
    );

    // Deterministic: the same input gives the same message id.
    let again = orchestrator
        .send(SubmitRun::intent("email.send", input))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again.run_id, outcome.run_id);
    assert_eq!(again.result, outcome.result);
}
