//! Old logs still replay. `tests/fixtures/log-1b8a339/` holds an embedded
//! log written by the `neonhub` binary of commit 1b8a339 (before steps,
//! request digests and resumes), and what that binary said about it. Today's
//! code opens a copy read-only (not a byte of it changes), checks the hash
//! chain against the old `audit verify`, decodes every event with today's
//! `Codec`, rebuilds the AgentRun table and finds it equal, column by column,
//! to the old `runs list --format json`; today's binary prints the same rows
//! and report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use neonhub::format_time;
use neonhub_events::{
    Codec, EmbeddedLog, EventStore, LogOptions, Position, RunEvent, SharedStore, event_types,
};
use neonhub_projections::{
    AgentRun, MAX_PAGE_SIZE, Progress, RebuildOptions, RunFilter, RunQueries,
};
use neonhub_test_support::service::{run_cli, stdout};
use serde_json::{Value, json};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/log-1b8a339")
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture().join("expected").join(name)).unwrap()
}

/// Every file of `dir` by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A copy of the fixture's log in `<dir>/log`; returns its files.
fn copy_log(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let original = files(&fixture().join("log"));
    assert!(!original.is_empty());
    let log = dir.join("log");
    std::fs::create_dir_all(&log).unwrap();
    for (name, bytes) in &original {
        assert!(
            name.starts_with("seg-"),
            "only segments in the fixture: {name}"
        );
        std::fs::write(log.join(name), bytes).unwrap();
    }
    original
}

/// `(events, head position, head hash)` from an `audit verify` line.
fn chain_of(audit: &str) -> (u64, u64, String) {
    let rest = audit
        .strip_prefix("ok: ")
        .unwrap_or_else(|| panic!("{audit}"));
    let words: Vec<&str> = rest.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    // "<n> events head position <p> head hash <hex> (...)"
    assert_eq!(
        (words[1], words[2], words[3], words[5], words[6]),
        ("events", "head", "position", "head", "hash"),
        "{audit}"
    );
    (
        words[0].parse().unwrap(),
        words[4].parse().unwrap(),
        words[7].to_owned(),
    )
}

/// A row as `runs list --format json` shows it (`src/view.rs`), built here
/// from the fields so that every column is compared on its own.
fn columns(run: &AgentRun) -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("run_id", json!(run.run_id.to_string())),
        (
            "parent_run_id",
            json!(run.parent_run_id.map(|p| p.to_string())),
        ),
        ("correlation_id", json!(run.correlation_id.to_string())),
        ("kind", json!(run.kind.as_str())),
        ("target", json!(run.target)),
        ("operation", json!(run.operation)),
        ("intent", json!(run.intent)),
        ("status", json!(run.status.as_str())),
        ("attempts", json!(run.attempts)),
        ("input", run.input.clone()),
        ("output", json!(run.output)),
        (
            "error",
            json!(
                run.error
                    .as_ref()
                    .map(|e| json!({"kind": e.kind.as_str(), "message": e.message}))
            ),
        ),
        ("started_at", json!(format_time(run.started_at))),
        ("finished_at", json!(run.finished_at.map(format_time))),
        (
            "duration_ms",
            json!(run.duration_micros.map(|m| m as f64 / 1000.0)),
        ),
        ("first_position", json!(run.first_position.0)),
        ("last_position", json!(run.last_position.0)),
    ])
}

#[tokio::test]
async fn the_log_of_1b8a339_opens_read_only_decodes_and_rebuilds_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let original = copy_log(dir.path());
    let log_dir = dir.path().join("log");

    // The hash chain, as the old binary's `audit verify` reported it.
    let log = EmbeddedLog::open_read_only(&log_dir, LogOptions::default()).unwrap();
    let chain = log.verify().unwrap();
    let (events, head, head_hash) = chain_of(&expected("audit-verify.txt"));
    assert_eq!(
        (chain.events, chain.head.0, chain.head_hash_hex()),
        (events, head, head_hash)
    );

    // Every event decodes with today's codec, upcasters included.
    let codec = Codec::new();
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut from = Position::START;
    loop {
        let page = log.read_all(from, 256).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for recorded in &page {
            let event = codec
                .decode(recorded)
                .unwrap_or_else(|e| panic!("position {}: {e}", recorded.position));
            if let RunEvent::Started(s) = &event {
                // Fields added after 1b8a339 take their defaults.
                assert_eq!(
                    (&s.request_digest, &s.step, s.resumed),
                    (&None, &None, false)
                );
            }
            *types.entry(recorded.event_type.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(types.values().sum::<u64>(), events, "{types:?}");
    let names: BTreeSet<&str> = types.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            event_types::RUN_STARTED,
            event_types::RUN_SUCCEEDED,
            event_types::RUN_FAILED
        ]),
    );

    // The AgentRun table rebuilt from it, and checked against the log.
    let store: SharedStore = Arc::new(log);
    let table = dir.path().join("agent_runs.sqlite");
    let options = RebuildOptions {
        progress: Progress::Hidden,
        ..RebuildOptions::default()
    };
    neonhub_projections::rebuild(&store, &table, options)
        .await
        .unwrap();
    let check = neonhub_projections::verify(&*store, &table).await.unwrap();
    assert!(check.is_complete(), "{check}");

    // Column by column against what the old binary listed.
    let old: Value = serde_json::from_str(&expected("runs.json")).unwrap();
    assert!(
        old["next_cursor"].is_null(),
        "the expected file is one page"
    );
    let old_rows = old["runs"].as_array().unwrap();
    let page = RunQueries::open(&table)
        .unwrap()
        .list(&RunFilter::new(), None, MAX_PAGE_SIZE)
        .unwrap();
    assert!(page.next.is_none());
    assert_eq!(page.runs.len(), old_rows.len(), "rows");
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let today: BTreeMap<String, &AgentRun> = page
        .runs
        .iter()
        .map(|r| (r.run_id.to_string(), r))
        .collect();
    for old_row in old_rows {
        let old_row = old_row.as_object().unwrap();
        let run_id = old_row["run_id"].as_str().unwrap();
        let run = today
            .get(run_id)
            .unwrap_or_else(|| panic!("run {run_id} is not in today's table"));
        let new_row = columns(run);
        let old_columns: BTreeSet<&str> = old_row.keys().map(String::as_str).collect();
        let new_columns: BTreeSet<&str> = new_row.keys().copied().collect();
        assert_eq!(old_columns, new_columns, "the columns");
        for (column, value) in &new_row {
            if old_row[*column] != *value {
                mismatches.push(format!(
                    "run {run_id} column {column}: old {} today {value}",
                    old_row[*column]
                ));
            }
        }
        let status = match &run.error {
            Some(e) => format!("{} {}", run.status.as_str(), e.kind.as_str()),
            None => run.status.as_str().to_owned(),
        };
        *statuses
            .entry(format!("{} {status}", run.kind.as_str()))
            .or_insert(0) += 1;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The fixture has the variety it claims (README.md).
    for shape in [
        "agent succeeded",
        "agent failed rejected",
        "agent failed connector",
        "agent failed interrupted",
        "agent running",
        "connector succeeded",
        "connector failed connector",
        "connector failed interrupted",
        "connector running",
    ] {
        assert!(statuses.contains_key(shape), "no {shape} run: {statuses:?}");
    }
    assert!(
        page.runs
            .iter()
            .any(|r| r.kind.as_str() == "connector" && r.attempts > 1),
        "no retried connector run"
    );
    eprintln!("{events} events, {} rows: {statuses:?}", page.runs.len());

    // Reading wrote nothing: no lock file, not a byte changed.
    drop(store);
    assert_eq!(files(&log_dir), original);
}

#[test]
fn todays_binary_lists_and_reports_the_log_of_1b8a339_as_the_old_one_did() {
    let dir = tempfile::tempdir().unwrap();
    let original = copy_log(dir.path());
    let data = dir.path();

    let json =
        |args: &[&str]| -> Value { serde_json::from_str(&stdout(&run_cli(data, args))).unwrap() };
    // `runs list` and `report` read the AgentRun table alone: build it from
    // the old log first, as their error without one says.
    let table = data.join(neonhub::PROJECTION_FILE);
    stdout(&run_cli(
        data,
        &["replay", "--out", table.to_str().unwrap()],
    ));
    let runs = json(&["runs", "list", "--format", "json", "--limit", "1000"]);
    let old_runs: Value = serde_json::from_str(&expected("runs.json")).unwrap();
    assert_eq!(runs, old_runs);
    let mut report = json(&["report", "--format", "json"]);
    // The old build had no language-model columns, and its log no usage:
    // this build adds them, at 0.
    for row in report["agents"].as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        for (added, zero) in [
            ("input_tokens", Value::from(0)),
            ("output_tokens", Value::from(0)),
            ("cost_usd", Value::from(0.0)),
        ] {
            assert_eq!(row.remove(added), Some(zero), "{added}");
        }
    }
    let old_report: Value = serde_json::from_str(&expected("report.json")).unwrap();
    assert_eq!(report, old_report);
    let audit = stdout(&run_cli(data, &["audit", "verify"]));
    assert_eq!(chain_of(&audit), chain_of(&expected("audit-verify.txt")));

    // Those commands open the log for writing; the old records stay as they
    // were.
    let now = files(&data.join("log"));
    for (name, bytes) in &original {
        assert_eq!(now.get(name), Some(bytes), "{name} changed");
    }
}
