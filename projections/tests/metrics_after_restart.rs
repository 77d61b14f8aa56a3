//! After a restart the metrics come back from the checkpointed state, without
//! replaying the log, and equal what a fresh full replay renders.

use neonhub_events::Position;
use neonhub_projections::{
    AgentRunsProjection, AsOf, Progress, Projection, ProjectionRunner, RebuildOptions, rebuild,
};
use neonhub_test_support::projections as support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_after_restart_equals_a_fresh_full_replay() {
    let mut log = support::TestLog::open();
    let events = support::events(1_200, 3);
    let (first, second) = events.split_at(events.len() / 2);
    log.append(first).await;
    let db = log.db("live.sqlite");

    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap())
            .with_batch_size(113);
    let checkpoint = runner.catch_up().await.unwrap();
    let before_restart = runner.projection().metrics().render();
    drop(runner);

    log.append(second).await;

    // Restart: the metrics are back as they were, from the checkpoint alone.
    let reopened = AgentRunsProjection::open(&db).unwrap();
    assert_eq!(reopened.checkpoint(), checkpoint);
    assert!(checkpoint > Position::START);
    assert_eq!(reopened.metrics().render(), before_restart);
    let as_of_checkpoint = log.db("as-of-checkpoint.sqlite");
    rebuild(
        &log.store,
        &as_of_checkpoint,
        RebuildOptions::default()
            .as_of(AsOf::Position(Position(checkpoint.0 - 1)))
            .progress(Progress::Hidden),
    )
    .await
    .unwrap();
    assert_eq!(before_restart, support::metrics_text(&as_of_checkpoint));

    // The runner goes on from the checkpoint (it reads only the new events).
    let mut runner = ProjectionRunner::new(log.store.clone(), reopened).with_batch_size(113);
    let head = runner.catch_up().await.unwrap();
    assert_eq!(head, log.store.head().await.unwrap());
    let after_restart = runner.projection().metrics().render();

    let fresh = log.db("fresh.sqlite");
    rebuild(
        &log.store,
        &fresh,
        RebuildOptions::default().progress(Progress::Hidden),
    )
    .await
    .unwrap();
    let full_replay = support::metrics_text(&fresh);
    assert_eq!(after_restart, full_replay);
    assert_ne!(after_restart, before_restart);
    for name in [
        "neonhub_agent_runs_total",
        "neonhub_agent_run_duration_seconds_bucket",
        "neonhub_agent_run_duration_seconds_sum",
        "neonhub_connector_requests_total",
        "neonhub_connector_request_duration_seconds_count",
        "neonhub_runs_in_flight",
    ] {
        assert!(
            full_replay.contains(name),
            "{name} missing from\n{full_replay}"
        );
    }
    assert!(full_replay.contains("# TYPE neonhub_agent_run_duration_seconds histogram"));
    assert!(full_replay.contains("# TYPE neonhub_agent_runs_total counter"));
}
