//! A rebuild as of a position or a time holds exactly the rows of the log's
//! prefix, in a separate file, leaving the live table untouched.

use neonhub_events::Position;
use neonhub_projections::{
    AgentRunsProjection, AsOf, Error, Progress, Projection, ProjectionRunner, RebuildOptions,
    rebuild,
};
use neonhub_test_support::projections as support;

/// The table of the prefix `..=last`, built one event per transaction.
async fn prefix_table(log: &support::TestLog, last: Position, path: &std::path::Path) {
    let mut p = AgentRunsProjection::open(path).unwrap();
    let events = log
        .store
        .read_all(Position::START, last.0 as usize + 1)
        .await
        .unwrap();
    for e in events.iter().filter(|e| e.position <= last) {
        p.apply(std::slice::from_ref(e)).unwrap();
    }
    assert_eq!(p.checkpoint(), last.next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_as_of_a_position_or_time_is_the_prefix() {
    let mut log = support::TestLog::open();
    let events = support::events(600, 5);
    // Appended in a few rounds, so recorded_at moves on between them.
    for chunk in events.chunks(events.len() / 4 + 1) {
        log.append(chunk).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let head = log.store.head().await.unwrap();

    let live_db = log.db("live.sqlite");
    let mut runner = ProjectionRunner::new(
        log.store.clone(),
        AgentRunsProjection::open(&live_db).unwrap(),
    );
    runner.catch_up().await.unwrap();
    drop(runner);
    let live_before = support::rows(&live_db);
    let live_metrics = support::metrics_text(&live_db);

    for (i, last) in [0, 1, head.0 / 3, head.0 / 2 + 7, head.0 - 1]
        .into_iter()
        .enumerate()
    {
        let last = Position(last);
        let as_of = log.db(&format!("as-of-{i}.sqlite"));
        let summary = rebuild(
            &log.store,
            &as_of,
            RebuildOptions::default()
                .as_of(AsOf::Position(last))
                .batch_size(64)
                .progress(Progress::Hidden),
        )
        .await
        .unwrap();
        assert_eq!(summary.checkpoint, last.next());
        assert_eq!(summary.events, last.0 + 1);
        let expected = log.db(&format!("prefix-{i}.sqlite"));
        prefix_table(&log, last, &expected).await;
        let rows = support::rows(&as_of);
        assert_eq!(rows, support::rows(&expected), "as of {last}");
        assert!(rows.iter().all(|r| r.last_position <= last));
        assert_eq!(
            support::metrics_text(&as_of),
            support::metrics_text(&expected)
        );
    }

    // As of a time: every event recorded at or before it.
    let all = log
        .store
        .read_all(Position::START, usize::MAX)
        .await
        .unwrap();
    let cut = &all[all.len() / 2];
    let by_time = log.db("by-time.sqlite");
    let summary = rebuild(
        &log.store,
        &by_time,
        RebuildOptions::default()
            .as_of(AsOf::Time(cut.recorded_at))
            .progress(Progress::Hidden),
    )
    .await
    .unwrap();
    let last = all
        .iter()
        .take_while(|e| e.recorded_at <= cut.recorded_at)
        .last()
        .unwrap()
        .position;
    assert!(last >= cut.position && last < head);
    assert_eq!(summary.checkpoint, last.next());
    let expected = log.db("by-time-prefix.sqlite");
    prefix_table(&log, last, &expected).await;
    assert_eq!(support::rows(&by_time), support::rows(&expected));

    // A rebuild never overwrites, and never touched the live table.
    assert!(matches!(
        rebuild(&log.store, &by_time, RebuildOptions::default()).await,
        Err(Error::TargetExists(_))
    ));
    assert_eq!(support::rows(&live_db), live_before);
    assert_eq!(support::metrics_text(&live_db), live_metrics);
    assert_eq!(
        neonhub_projections::RunQueries::open(&live_db)
            .unwrap()
            .checkpoint()
            .unwrap(),
        head
    );
}
