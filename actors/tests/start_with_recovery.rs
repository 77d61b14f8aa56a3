//! Given a log holding a run that was started and never finished, when the
//! service starts (recovery, then the orchestrator), then the run is closed with
//! RunFailed{interrupted} before the orchestrator accepts new runs.

use neonhub_actors::{OrchestratorBuilder, SubmitRun, recover_interrupted};
use neonhub_events::{
    Codec, ExpectedRevision, Metadata, RunEvent, RunId, RunKind, RunStarted, Timestamp,
};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn recovery_runs_before_the_first_run_is_accepted() {
    let (_dir, store) = support::store();
    let open = RunId::new();
    let started = RunEvent::Started(RunStarted {
        run_id: open,
        kind: RunKind::Agent,
        target: "echo".into(),
        operation: "run".into(),
        intent: Some("echo".into()),
        input: json!({"left": "open"}),
        attempt: 1,
        parent_run_id: None,
        correlation_id: *open.as_uuid(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: None,
        resumed: false,
        node: None,
        paused_micros: 0,
    });
    let metadata = Metadata {
        correlation_id: Some(*open.as_uuid()),
        causation_id: None,
    };
    let data = Codec::new().encode(&started, metadata).unwrap();
    store
        .append(&open.stream(), ExpectedRevision::NoStream, vec![data])
        .await
        .unwrap();

    // What the service does at start-up: recovery, then the orchestrator.
    let report = recover_interrupted(&*store, &Codec::new()).await.unwrap();
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .start()
        .unwrap();

    assert_eq!(report.interrupted, [open]);
    let recorded = support::recorded(&store, open).await;
    assert_eq!(
        support::shape(&support::events(&store, open).await),
        ["started#1", "failed#1(interrupted)"]
    );
    assert_eq!(recorded[1].metadata, metadata);
    let fresh = orchestrator
        .send(SubmitRun::intent("echo", json!(1)))
        .await
        .unwrap()
        .unwrap();
    assert!(fresh.is_success());
    assert_eq!(support::all(&store).await.len(), 4);
}
