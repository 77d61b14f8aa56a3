//! `neonhub audit verify` recomputes every column of every row and every
//! metric series from the log, and reports every difference (a bounded list
//! and a count), each naming the run, the column and both values, without
//! changing a byte of the data directory.

use std::path::Path;

use neonhub_test_support::files::{assert_unchanged, fingerprints};
use neonhub_test_support::service::run_cli;
use rusqlite::Connection;

/// Four runs: echo (positions 0..=1), email (2, 5) with its gmail call
/// (3..=4), and an email rejected for its input (6..=7).
fn four_runs(data: &Path) {
    for (agent, input) in [
        ("echo", r#"{"note": "aaaa"}"#),
        (
            "email",
            r#"{"to": "a@example.com", "subject": "s", "body": "b"}"#,
        ),
        ("email", "{}"),
    ] {
        let out = run_cli(data, &["run", agent, "--input", input]);
        assert!(
            out.status.code() == Some(0) || input == "{}",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn audit(data: &Path) -> (Option<i32>, String, String) {
    let out = run_cli(data, &["audit", "verify"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn table(data: &Path) -> Connection {
    Connection::open(data.join(neonhub::PROJECTION_FILE)).unwrap()
}

/// The text value of `column` in the row at `first_position`.
fn text(db: &Connection, column: &str, first_position: i64) -> String {
    db.query_row(
        &format!("SELECT CAST({column} AS TEXT) FROM agent_runs WHERE first_position = ?1"),
        [first_position],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn every_edited_column_is_named_with_both_values_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    four_runs(data);
    let db = table(data);
    let run = |p| text(&db, "run_id", p);
    let (echo, email, gmail, rejected) = (run(0), run(2), run(3), run(6));
    let duration: i64 = text(&db, "duration_micros", 2).parse().unwrap();
    let started: i64 = text(&db, "started_at", 2).parse().unwrap();
    let correlation = text(&db, "correlation_id", 2);
    let parent = text(&db, "parent_run_id", 3);
    let message = text(&db, "error_message", 6);
    db.execute_batch(
        "UPDATE agent_runs SET target = 'echo2', output = '{\"note\":\"forged\"}' WHERE first_position = 0;
         UPDATE agent_runs SET duration_micros = duration_micros + 1, started_at = started_at - 5,
             correlation_id = '00000000-0000-7000-8000-000000000009' WHERE first_position = 2;
         UPDATE agent_runs SET parent_run_id = NULL WHERE first_position = 3;
         UPDATE agent_runs SET input = '{\"to\":\"b@example.com\"}', error_message = 'forged'
             WHERE first_position = 6;",
    )
    .unwrap();
    drop(db);
    let before = fingerprints(data);

    let (code, out, err) = audit(data);

    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out, "");
    let expected = [
        format!(
            "mismatch: run {echo} (first event at position 0): target is \"echo2\" in the table, \"echo\" in the log"
        ),
        format!(
            "mismatch: run {echo} (first event at position 0): output is {{\"note\":\"forged\"}} in the table, {{\"note\":\"aaaa\"}} in the log"
        ),
        format!(
            "mismatch: run {email} (first event at position 2): correlation_id is \"00000000-0000-7000-8000-000000000009\" in the table, \"{correlation}\" in the log"
        ),
        format!(
            "mismatch: run {email} (first event at position 2): started_at is {} in the table, {started} in the log",
            started - 5
        ),
        format!(
            "mismatch: run {email} (first event at position 2): duration_micros is {} in the table, {duration} in the log",
            duration + 1
        ),
        format!(
            "mismatch: run {gmail} (first event at position 3): parent_run_id is NULL in the table, \"{parent}\" in the log"
        ),
        format!(
            "mismatch: run {rejected} (first event at position 6): input is {{\"to\":\"b@example.com\"}} in the table, {{}} in the log"
        ),
        format!(
            "mismatch: run {rejected} (first event at position 6): error_message is \"forged\" in the table, {message:?} in the log"
        ),
        "error: audit failed at position 0: the AgentRun table does not match the log: 8 mismatch(es), listed above (rebuild the table with `neonhub replay`; never edit the log)".to_owned(),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, expected, "{err}");
    assert_unchanged(data, &before);
}

#[test]
fn a_counter_raised_by_a_thousand_is_named_with_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    four_runs(data);
    let db = table(data);
    let changed = db
        .execute(
            "UPDATE run_metric_counters SET value = value + 1000
             WHERE family = 'neonhub_agent_runs_total' AND labels LIKE '%\"email\"%\"succeeded\"%'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let before = fingerprints(data);

    let (code, out, err) = audit(data);

    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "mismatch: metric neonhub_agent_runs_total{agent=\"email\",status=\"succeeded\"} is 1001 in the table, 1 in the log",
            "error: audit failed: the AgentRun table does not match the log: 1 mismatch(es), listed above (rebuild the table with `neonhub replay`; never edit the log)",
        ],
        "{err}"
    );
    assert_unchanged(data, &before);
}

#[test]
fn a_histogram_and_the_in_flight_gauge_are_compared_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    four_runs(data);
    let db = table(data);
    db.execute_batch(
        "UPDATE run_metric_histograms SET count = count + 1
             WHERE family = 'neonhub_connector_request_duration_seconds';
         UPDATE run_metric_counters SET value = 3 WHERE family = 'neonhub_runs_in_flight';",
    )
    .unwrap();
    drop(db);

    let (code, out, err) = audit(data);

    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("mismatch: metric neonhub_connector_request_duration_seconds{connector=\"gmail\"} is count 2, sum "),
        "{err}"
    );
    assert!(
        err.contains("mismatch: metric neonhub_runs_in_flight is 3 in the table, 0 in the log"),
        "{err}"
    );
    assert!(err.contains("2 mismatch(es)"), "{err}");
}
