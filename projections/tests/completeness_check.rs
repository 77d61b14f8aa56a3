//! The completeness check proves a table matches the log, says how far its
//! checkpoint is behind the head, and reports the first mismatch when a row
//! was altered, removed or added behind the projection's back.

use std::path::Path;

use neonhub_events::{EmbeddedLog, LogOptions, Position};
use neonhub_projections::{
    AgentRunsProjection, Mismatch, ProjectionRunner, RunQueries, RunStatus, VerifyReport,
    run_event_feed, verify, verify_fed,
};
use neonhub_test_support::projections as support;

/// The check both ways: reading the log itself (`verify`), and fed the run
/// events by the hash chain check of a read-only handle on the same log, as
/// `audit verify` does (`verify_fed`, in batches of 7 so that runs and pages
/// straddle batches). The two reports must be equal.
async fn check(log: &support::TestLog, db: &Path) -> VerifyReport {
    let read = verify(&*log.store, db).await.unwrap();
    let reader =
        EmbeddedLog::open_read_only(log.dir.path().join("log"), LogOptions::default()).unwrap();
    let (mut feed, fed) = run_event_feed(7, 2);
    let chain = std::thread::spawn(move || {
        reader
            .verify_each(None, |record| feed.visit(record))
            .unwrap();
        feed.finish();
    });
    let fed = verify_fed(&*log.store, db, Position::START, fed)
        .await
        .unwrap();
    chain.join().unwrap();
    assert_eq!(fed, read, "verify_fed and verify disagree");
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_lag_and_the_first_mismatch() {
    let mut log = support::TestLog::open();
    let events = support::events(300, 17);
    let (first, second) = events.split_at(events.len() / 2);
    log.append(first).await;
    let db = log.db("table.sqlite");
    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap());
    let checkpoint = runner.catch_up().await.unwrap();
    drop(runner);
    log.append(second).await;

    // Behind, but what it has matches.
    let report = check(&log, &db).await;
    assert!(report.matches(), "{report}");
    assert!(!report.is_complete());
    assert_eq!(report.checkpoint, checkpoint);
    assert_eq!(report.behind(), second.len() as u64);
    assert!(
        report
            .to_string()
            .contains(&format!("{} behind", second.len()))
    );

    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap());
    runner.catch_up().await.unwrap();
    drop(runner);
    let report = check(&log, &db).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.rows, report.runs_in_log);

    // Tamper with the table the way a hand edit would.
    let rows = RunQueries::open(&db).unwrap().all_runs().unwrap();
    let mut by_position = rows.clone();
    by_position.sort_by_key(|r| r.first_position);
    let early = &by_position[10];
    let later_finished = by_position[20..]
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE agent_runs SET status = 'failed' WHERE run_id = ?1",
        [later_finished.run_id.to_string()],
    )
    .unwrap();
    let report = check(&log, &db).await;
    assert_eq!(
        report.first_mismatch(),
        Some(&Mismatch::Column {
            run_id: later_finished.run_id,
            first_position: later_finished.first_position,
            column: "status",
            table: "\"failed\"".into(),
            log: "\"succeeded\"".into(),
        })
    );
    assert_eq!(report.mismatch_count, 1, "{report}");

    // A missing row earlier in the log is now the first mismatch.
    conn.execute(
        "DELETE FROM agent_runs WHERE run_id = ?1",
        [early.run_id.to_string()],
    )
    .unwrap();
    let report = check(&log, &db).await;
    assert_eq!(
        report.first_mismatch(),
        Some(&Mismatch::MissingRow {
            run_id: early.run_id,
            first_position: early.first_position,
        })
    );
    assert!(report.to_string().starts_with("MISMATCH"));
    assert_eq!(report.mismatch_count, 2, "{report}");

    // Attempts that differ.
    conn.execute(
        "UPDATE agent_runs SET status = 'succeeded' WHERE run_id = ?1",
        [later_finished.run_id.to_string()],
    )
    .unwrap();
    let copy = rows.iter().find(|r| r.run_id == early.run_id).unwrap();
    drop(conn);
    // Restore the deleted row through a fresh projection of the log, then
    // bump one row's attempts.
    let fresh = log.db("fresh.sqlite");
    let mut runner = ProjectionRunner::new(
        log.store.clone(),
        AgentRunsProjection::open(&fresh).unwrap(),
    );
    runner.catch_up().await.unwrap();
    drop(runner);
    let conn = rusqlite::Connection::open(&fresh).unwrap();
    conn.execute(
        "UPDATE agent_runs SET attempts = attempts + 1 WHERE run_id = ?1",
        [copy.run_id.to_string()],
    )
    .unwrap();
    let report = check(&log, &fresh).await;
    assert_eq!(
        report.first_mismatch(),
        Some(&Mismatch::Column {
            run_id: copy.run_id,
            first_position: copy.first_position,
            column: "attempts",
            table: (copy.attempts + 1).to_string(),
            log: copy.attempts.to_string(),
        })
    );

    // A row no run stream explains.
    conn.execute(
        "UPDATE agent_runs SET attempts = attempts - 1 WHERE run_id = ?1",
        [copy.run_id.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO agent_runs SELECT '00000000-0000-7000-8000-000000000001', parent_run_id,
             correlation_id, kind, target, operation, intent, status, attempts, input, output,
             error_kind, error_message, started_at, finished_at, duration_micros,
             first_position + 1000000, last_position, paused_micros, model,
             input_tokens, output_tokens, cost_usd
         FROM agent_runs WHERE run_id = ?1",
        [copy.run_id.to_string()],
    )
    .unwrap();
    drop(conn);
    let report = check(&log, &fresh).await;
    assert_eq!(
        report.first_mismatch(),
        Some(&Mismatch::UnexpectedRow {
            run_id: "00000000-0000-7000-8000-000000000001".into(),
            first_position: Some(neonhub_events::Position(copy.first_position.0 + 1_000_000)),
        })
    );
    assert_eq!(report.rows, report.runs_in_log + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mismatch_is_counted_and_the_first_hundred_are_listed() {
    let mut log = support::TestLog::open();
    log.append(&support::events(600, 5)).await;
    let db = log.db("table.sqlite");
    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap());
    runner.catch_up().await.unwrap();
    drop(runner);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = conn
        .execute("UPDATE agent_runs SET target = target || '-forged'", [])
        .unwrap() as u64;
    assert!(
        rows > neonhub_projections::LISTED_MISMATCHES as u64,
        "{rows}"
    );
    drop(conn);

    let report = check(&log, &db).await;

    assert_eq!(report.mismatch_count, rows, "{report}");
    assert_eq!(
        report.mismatches.len(),
        neonhub_projections::LISTED_MISMATCHES
    );
    assert!(report.mismatches.iter().all(|m| matches!(
        m,
        Mismatch::Column { column: "target", table, log, .. } if *table == log.trim_end_matches('"').to_owned() + "-forged\""
    )));
    let positions: Vec<_> = report
        .mismatches
        .iter()
        .map(|m| m.first_position().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_positions_are_named_too() {
    let mut log = support::TestLog::open();
    log.append(&support::events(60, 9)).await;
    let db = log.db("table.sqlite");
    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap());
    runner.catch_up().await.unwrap();
    drop(runner);
    let mut rows = RunQueries::open(&db).unwrap().all_runs().unwrap();
    rows.sort_by_key(|r| r.first_position);
    // A run whose row claims it ended at its first event, and one whose key
    // (its first position) was moved past the end of the log.
    let early = rows
        .iter()
        .find(|r| r.last_position > r.first_position)
        .unwrap();
    let moved = rows
        .iter()
        .rev()
        .find(|r| r.run_id != early.run_id)
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE agent_runs SET last_position = first_position WHERE run_id = ?1",
        [early.run_id.to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE agent_runs SET first_position = 1000000 WHERE run_id = ?1",
        [moved.run_id.to_string()],
    )
    .unwrap();
    drop(conn);

    let report = check(&log, &db).await;

    let named = |run_id, column| {
        report.mismatches.iter().any(|m| {
            matches!(m, Mismatch::Column { run_id: r, column: c, .. } if *r == run_id && *c == column)
        })
    };
    assert!(
        named(early.run_id, "last_position"),
        "{:#?}",
        report.mismatches
    );
    assert!(
        named(moved.run_id, "first_position"),
        "{:#?}",
        report.mismatches
    );
    assert!(
        report.mismatches.iter().any(|m| matches!(
            m,
            Mismatch::Column { run_id, column: "first_position", table, .. }
                if *run_id == moved.run_id && table == "1000000"
        )),
        "{:#?}",
        report.mismatches
    );
    assert_eq!(report.rows, report.runs_in_log);
}
