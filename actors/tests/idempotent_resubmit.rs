//! Given a run submitted with a client-chosen id, when the same request is
//! submitted again (after it finished, or while it is still running), then
//! the caller gets that run's outcome and nothing new is appended. (Another
//! input under the same id is refused: `run_id_conflict.rs`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neonhub_actors::{AgentOptions, OrchestratorBuilder, SubmitRun};
use neonhub_events::RunId;
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn resubmitting_a_finished_run_returns_its_outcome_and_appends_nothing() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);
    let run_id = RunId::new();

    let first = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();
    let head = store.head().await.unwrap();

    let again = orchestrator
        .send(SubmitRun::intent("echo", json!({"n": 1})).with_run_id(run_id))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(first.run_id, run_id);
    assert_eq!(again, first);
    assert_eq!(again.result, Ok(json!({"n": 1})));
    assert_eq!(store.head().await.unwrap(), head);
    let events = support::events(&store, run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
}

#[actix::test]
async fn resubmitting_a_running_run_waits_for_the_same_outcome() {
    let store = support::memory_store();
    let gated = support::Gated::new();
    let (gate, runs) = (Arc::clone(&gated.gate), Arc::clone(&gated.entered));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(move || gated.clone(), AgentOptions::default())
        .start()
        .unwrap();
    let run_id = RunId::new();

    let first = orchestrator.send(SubmitRun::agent("gated", json!("a")).with_run_id(run_id));
    let first = tokio::spawn(first);
    support::wait_until_within(
        "the first run to be inside the agent",
        Duration::from_secs(5),
        || {
            let runs = Arc::clone(&runs);
            async move { runs.load(Ordering::SeqCst) == 1 }
        },
    )
    .await;
    let second =
        tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("a")).with_run_id(run_id)));
    gate.add_permits(1);

    let first = first.await.unwrap().unwrap().unwrap();
    let second = second.await.unwrap().unwrap().unwrap();
    assert_eq!(first.result, Ok(json!("a")));
    assert_eq!(second, first);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the agent ran once");
    let events = support::events(&store, run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
    assert_eq!(support::all(&store).await.len(), 2);
}
