//! A client-chosen run id is an idempotency key: it means one request, one
//! target and one input. Given a run recorded under an id, when the id is
//! submitted again with another agent or another input, then the submission
//! is refused with `RunIdConflict` and nothing is appended, whether the run
//! finished, is still in flight, or was written before the digest existed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neonhub_actors::{AgentOptions, Error, OrchestratorBuilder, SubmitRun};
use neonhub_events::{
    Codec, ExpectedRevision, Metadata, RunEvent, RunId, RunKind, RunStarted, RunSucceeded,
    Timestamp, request_digest,
};
use neonhub_test_support as support;
use serde_json::json;

fn assert_conflict(result: Result<neonhub_actors::RunOutcome, Error>, run_id: RunId) {
    match result {
        Err(Error::RunIdConflict { run_id: id, .. }) => assert_eq!(id, run_id),
        other => panic!("expected RunIdConflict for {run_id}, got {other:?}"),
    }
}

#[actix::test]
async fn another_input_or_agent_for_a_finished_run_id_is_refused_and_appends_nothing() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);
    let run_id = RunId::new();
    let first = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();
    let head = store.head().await.unwrap();

    let other_input = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 2})).with_run_id(run_id))
        .await
        .unwrap();
    assert_conflict(other_input, run_id);
    let other_agent = orchestrator
        .send(SubmitRun::intent("content.generate", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap();
    assert_conflict(other_agent, run_id);
    assert_eq!(store.head().await.unwrap(), head, "a refusal appended");

    // The same request is still answered with the recorded outcome.
    let same = orchestrator
        .send(SubmitRun::agent("echo", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same, first);
    assert_eq!(store.head().await.unwrap(), head);
}

#[actix::test]
async fn the_run_started_event_records_the_request_digest() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);
    let run_id = RunId::new();
    let input = json!({"b": [1, 2], "a": "x"});
    orchestrator
        .send(SubmitRun::intent("echo", input.clone()).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();
    let events = support::events(&store, run_id).await;
    let RunEvent::Started(started) = &events[0] else {
        panic!("{events:?}")
    };
    let digest = started.request_digest.clone().expect("a digest");
    assert_eq!(digest.len(), 64, "{digest}");
    assert_eq!(digest, request_digest("echo", &input));
    assert_ne!(
        digest,
        request_digest("echo", &json!({"b": [2, 1], "a": "x"}))
    );
    assert_ne!(digest, request_digest("content", &input));
}

#[actix::test]
async fn another_input_while_the_run_is_in_flight_is_refused() {
    let store = support::memory_store();
    let gated = support::Gated::new();
    let (gate, entered) = (Arc::clone(&gated.gate), Arc::clone(&gated.entered));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(move || gated.clone(), AgentOptions::default())
        .start()
        .unwrap();
    let run_id = RunId::new();
    let first =
        tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("a")).with_run_id(run_id)));
    support::wait_until_within("the run to enter the agent", Duration::from_secs(5), || {
        let entered = Arc::clone(&entered);
        async move { entered.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let head = store.head().await.unwrap();

    let other = orchestrator
        .send(SubmitRun::agent("gated", json!("b")).with_run_id(run_id))
        .await
        .unwrap();
    assert_conflict(other, run_id);
    assert_eq!(store.head().await.unwrap(), head, "a refusal appended");

    gate.add_permits(1);
    let first = first.await.unwrap().unwrap().unwrap();
    assert_eq!(first.result, Ok(json!("a")));
    assert_eq!(entered.load(Ordering::SeqCst), 1, "the agent ran once");
}

#[actix::test]
async fn a_run_recorded_without_a_digest_is_compared_by_its_recorded_input() {
    let store = support::memory_store();
    let codec = Codec::new();
    let run_id = RunId::new();
    // As a log written before the digest existed holds it.
    let started = RunEvent::Started(RunStarted {
        run_id,
        kind: RunKind::Agent,
        target: "echo".into(),
        operation: "run".into(),
        intent: Some("echo".into()),
        input: json!({"n": 1}),
        attempt: 1,
        parent_run_id: None,
        correlation_id: *run_id.as_uuid(),
        started_at: Timestamp(1),
        request_digest: None,
        step: None,
        resumed: false,
        node: None,
        paused_micros: 0,
    });
    let succeeded = RunEvent::Succeeded(RunSucceeded {
        run_id,
        attempt: 1,
        output: json!({"n": 1}),
        duration_micros: 5,
        finished_at: Timestamp(6),
    });
    let data = [started, succeeded]
        .iter()
        .map(|e| codec.encode(e, Metadata::default()).unwrap())
        .collect();
    store
        .append(&run_id.stream(), ExpectedRevision::NoStream, data)
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    let orchestrator = support::builtin_orchestrator(&store);

    let same = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.result, Ok(json!({"n": 1})));
    let other = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 2})).with_run_id(run_id))
        .await
        .unwrap();
    assert_conflict(other, run_id);
    assert_eq!(store.head().await.unwrap(), head);
}
