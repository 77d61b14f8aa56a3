//! Given the echo agent, when a run is submitted by intent or by name, then
//! the store holds exactly RunStarted{attempt 1} and RunSucceeded, with the
//! conventions projections rely on.

use neonhub_actors::SubmitRun;
use neonhub_events::{RunEvent, RunKind};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn a_run_routed_by_intent_records_started_then_succeeded() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);

    let input = json!({"hello": "world", "n": 3});
    let outcome = orchestrator
        .send(SubmitRun::intent("echo", input.clone()))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.result, Ok(input.clone()));
    assert_eq!(outcome.attempts, 1);
    let recorded = support::recorded(&store, outcome.run_id).await;
    support::assert_contiguous(&recorded);
    let events = support::events(&store, outcome.run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
    let RunEvent::Started(started) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(started.run_id, outcome.run_id);
    assert_eq!(started.kind, RunKind::Agent);
    assert_eq!(started.target, "echo");
    assert_eq!(started.operation, "run");
    assert_eq!(started.intent.as_deref(), Some("echo"));
    assert_eq!(started.input, input);
    assert_eq!(started.parent_run_id, None);
    assert_eq!(started.correlation_id, *outcome.run_id.as_uuid());
    let RunEvent::Succeeded(done) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(done.output, input);
    assert_eq!(done.attempt, 1);
    for r in &recorded {
        assert_eq!(r.metadata.correlation_id, Some(*outcome.run_id.as_uuid()));
        assert_eq!(r.metadata.causation_id, None);
    }
    // Nothing else was written.
    assert_eq!(support::all(&store).await.len(), 2);
}

#[actix::test]
async fn a_run_routed_by_name_has_no_intent_and_keeps_a_given_correlation() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);
    let correlation = uuid::Uuid::now_v7();

    let outcome = orchestrator
        .send(SubmitRun::agent("echo", json!("hi")).with_correlation_id(correlation))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.correlation_id, correlation);
    let events = support::events(&store, outcome.run_id).await;
    let RunEvent::Started(started) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(started.intent, None);
    assert_eq!(started.correlation_id, correlation);
    for r in support::recorded(&store, outcome.run_id).await {
        assert_eq!(r.metadata.correlation_id, Some(correlation));
    }
}
