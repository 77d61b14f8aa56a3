//! Following the log live and rebuilding it from scratch give the same
//! AgentRun table and the same metrics, on thousands of runs of every shape.

use std::collections::HashSet;

use neonhub_events::{ErrorKind, RunKind};
use neonhub_projections::{
    AgentRunsProjection, Progress, ProjectionRunner, RebuildOptions, RunStatus, rebuild, verify,
};
use neonhub_test_support::projections as support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_scratch_equals_live_followed_state() {
    let mut log = support::TestLog::in_memory();
    let events = support::events(3_000, 7);
    let live_db = log.db("live.sqlite");

    // Some history before the runner starts (catch-up), the rest while it
    // follows the subscription.
    let split = events.len() / 3;
    log.append(&events[..split]).await;

    let runner = ProjectionRunner::new(
        log.store.clone(),
        AgentRunsProjection::open(&live_db).unwrap(),
    )
    .with_batch_size(97);
    let mut checkpoints = runner.checkpoints();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut runner = runner;
        runner
            .run(async {
                let _ = stop_rx.await;
            })
            .await
            .map(|()| runner)
    });
    for chunk in events[split..].chunks(500) {
        log.append(chunk).await;
    }
    let head = log.store.head().await.unwrap();
    assert_eq!(head.0, events.len() as u64);
    checkpoints.wait_for(|p| *p >= head).await.unwrap();
    stop_tx.send(()).unwrap();
    let runner = task.await.unwrap().unwrap();
    let live_metrics = runner.projection().metrics().render();
    drop(runner);

    let rebuilt_db = log.db("rebuilt.sqlite");
    let summary = rebuild(
        &log.store,
        &rebuilt_db,
        RebuildOptions::default().progress(Progress::Hidden),
    )
    .await
    .unwrap();
    assert_eq!(summary.events, events.len() as u64);
    assert_eq!(summary.checkpoint, head);

    let live = support::rows(&live_db);
    let rebuilt = support::rows(&rebuilt_db);
    assert_eq!(live.len(), rebuilt.len());
    assert_eq!(live, rebuilt);
    assert_eq!(live_metrics, support::metrics_text(&rebuilt_db));

    // The log really holds every shape.
    let runs: HashSet<_> = events.iter().map(|e| e.run_id()).collect();
    assert_eq!(live.len(), runs.len());
    assert!(
        live.iter()
            .any(|r| r.status == RunStatus::Succeeded && r.attempts == 1)
    );
    assert!(
        live.iter()
            .any(|r| r.status == RunStatus::Succeeded && r.attempts > 1)
    );
    assert!(
        live.iter()
            .any(|r| r.status == RunStatus::Failed && r.attempts > 1)
    );
    assert!(live.iter().any(|r| r.status == RunStatus::Running));
    assert!(
        live.iter()
            .any(|r| r.status == RunStatus::Running && r.attempts > 1)
    );
    assert!(live.iter().any(|r| {
        r.status == RunStatus::Failed
            && r.error.as_ref().map(|e| e.kind) == Some(ErrorKind::Interrupted)
    }));
    assert!(
        live.iter()
            .any(|r| r.kind == RunKind::Connector && r.parent_run_id.is_some())
    );
    for r in &live {
        assert_eq!(r.status == RunStatus::Running, r.finished_at.is_none());
        if let (Some(f), Some(d)) = (r.finished_at, r.duration_micros) {
            assert_eq!(d, f.0 - r.started_at.0);
        }
        assert!(r.first_position <= r.last_position);
    }
    assert!(
        live_metrics.contains("neonhub_agent_runs_total{agent=\"email\",status=\"succeeded\"}")
    );
    assert!(live_metrics.contains("neonhub_connector_requests_total{connector=\"gmail\""));
    let running = live
        .iter()
        .filter(|r| r.status == RunStatus::Running)
        .count();
    assert!(live_metrics.contains(&format!("neonhub_runs_in_flight {running}\n")));

    for db in [&live_db, &rebuilt_db] {
        let report = verify(&*log.store, db).await.unwrap();
        assert!(report.is_complete(), "{report}");
        assert_eq!(report.rows, runs.len() as u64);
    }
}
