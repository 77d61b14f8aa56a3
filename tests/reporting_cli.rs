//! The reporting command line over the AgentRun table: `runs list` pages
//! past 1,000 rows with a cursor or `--all`, narrows by kind, error kind
//! and correlation, sorts by duration; `runs tree` shows a request's runs;
//! `report` takes `--until` and `--by`; every format (table, json, jsonl,
//! csv) prints the same runs; time arguments take an explicit epoch unit
//! and refuse a bare number without changing anything.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use neonhub_events::{ErrorKind, RunKind};
use neonhub_test_support::runs::{HOUR, JAN_1, Run, record};
use neonhub_test_support::service::{neonhub, run_cli, stdout};
use serde_json::Value;

fn json(output: &Output) -> Value {
    serde_json::from_str(&stdout(output)).unwrap()
}

fn jsonl(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(runs: &[Value]) -> Vec<String> {
    runs.iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

/// 1,500 echo runs, a minute apart from 2026-01-01.
fn many_runs(data: &Path) -> Vec<Run> {
    let runs: Vec<Run> = (0..1500)
        .map(|i| Run::agent("echo", JAN_1 + i * 60_000_000, 1_000 + i))
        .collect();
    record(data, &runs);
    runs
}

#[test]
fn runs_list_pages_past_a_thousand_rows_with_a_cursor_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runs = many_runs(&data);

    // More than one page's worth: read page by page, no 1,000-row cap.
    let listed = jsonl(&run_cli(
        &data,
        &["runs", "list", "--limit", "1200", "--format", "jsonl"],
    ));
    assert_eq!(listed.len(), 1200);

    // A page, then the next from its cursor: every run once, newest first.
    let first = json(&run_cli(
        &data,
        &["runs", "list", "--limit", "1000", "--format", "json"],
    ));
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let second = json(&run_cli(
        &data,
        &[
            "runs", "list", "--limit", "1000", "--cursor", &cursor, "--format", "json",
        ],
    ));
    assert!(second["next_cursor"].is_null(), "{}", second["next_cursor"]);
    let mut paged = ids(first["runs"].as_array().unwrap());
    paged.extend(ids(second["runs"].as_array().unwrap()));
    let newest_first: Vec<String> = runs.iter().rev().map(|r| r.run_id.to_string()).collect();
    assert_eq!(paged, newest_first);

    // The table prints the cursor on stderr.
    let table = run_cli(&data, &["runs", "list", "--limit", "5"]);
    assert_eq!(stdout(&table).lines().count(), 6);
    let stderr = String::from_utf8_lossy(&table.stderr);
    assert!(stderr.contains("next cursor: "), "{stderr}");

    // --all: every match, in every format.
    let all = jsonl(&run_cli(
        &data,
        &["runs", "list", "--all", "--format", "jsonl"],
    ));
    assert_eq!(ids(&all), newest_first);
    let all = json(&run_cli(
        &data,
        &["runs", "list", "--all", "--format", "json"],
    ));
    assert_eq!(ids(all["runs"].as_array().unwrap()), newest_first);
    assert!(all["next_cursor"].is_null());
    let csv_text = stdout(&run_cli(
        &data,
        &["runs", "list", "--all", "--format", "csv"],
    ));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "run_id");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1500);
    assert_eq!(records[0][column("run_id")], newest_first[0]);
    assert_eq!(&records[0][column("input")], r#"{"n":0}"#);
    let table = stdout(&run_cli(&data, &["runs", "list", "--all"]));
    assert_eq!(
        table.lines().count(),
        1501,
        "one header line, then every run"
    );
    assert_eq!(table.lines().filter(|l| l.starts_with("RUN ID")).count(), 1);
}

#[test]
fn runs_list_narrows_by_kind_error_kind_and_correlation_and_sorts_by_duration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An agent named slack and the slack connector, both failing.
    let agent = Run::agent("slack", JAN_1, 5_000).failing(ErrorKind::Agent);
    let call = Run::call(&agent, "slack", "post_message").failing(ErrorKind::InDoubt);
    let other = Run::agent("email", JAN_1 + HOUR, 9_000);
    let other_call = Run::call(&other, "slack", "post_message").failing(ErrorKind::Timeout);
    let slow = Run::agent("echo", JAN_1 + 2 * HOUR, 50_000);
    let running = Run::agent("echo", JAN_1 + 3 * HOUR, 0).running();
    let runs = [&agent, &call, &other, &other_call, &slow, &running];
    record(&data, &runs.map(Run::clone));
    let list = |args: &[&str]| {
        let mut all = vec!["runs", "list", "--all", "--format", "json"];
        all.extend_from_slice(args);
        let value = json(&run_cli(&data, &all));
        ids(value["runs"].as_array().unwrap())
    };
    let id = |run: &Run| run.run_id.to_string();

    // The issue's example: agent and connector rows mixed...
    assert_eq!(
        list(&["--agent", "slack", "--status", "failed"]),
        [id(&other_call), id(&call), id(&agent)]
    );
    // ...and apart with --kind.
    assert_eq!(
        list(&["--agent", "slack", "--status", "failed", "--kind", "agent"]),
        [id(&agent)]
    );
    assert_eq!(
        list(&["--agent", "slack", "--kind", "connector"]),
        [id(&other_call), id(&call)]
    );
    assert_eq!(list(&["--error-kind", "in_doubt"]), [id(&call)]);
    assert_eq!(list(&["--error-kind", "timeout"]), [id(&other_call)]);
    let correlation = agent.correlation.to_string();
    assert_eq!(
        list(&["--correlation", &correlation]),
        [id(&call), id(&agent)]
    );
    assert_eq!(
        list(&["--until", "2026-01-01T01:00:00Z"]),
        [id(&call), id(&agent)]
    );

    // Longest first, finished runs only, paged with its own cursor.
    // (The failed runs last 2 ms each: latest in the log first.)
    let expected: Vec<String> = [&slow, &other, &other_call, &call, &agent]
        .iter()
        .map(|r| id(r))
        .collect();
    assert_eq!(list(&["--sort", "duration"]), expected);
    let page = json(&run_cli(
        &data,
        &[
            "runs", "list", "--sort", "duration", "--limit", "2", "--format", "json",
        ],
    ));
    assert_eq!(ids(page["runs"].as_array().unwrap()), expected[..2]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = json(&run_cli(
        &data,
        &[
            "runs", "list", "--sort", "duration", "--all", "--cursor", &cursor, "--format", "json",
        ],
    ));
    assert_eq!(ids(rest["runs"].as_array().unwrap()), expected[2..]);
    // A cursor of one order is refused for the other.
    let mixed = run_cli(&data, &["runs", "list", "--cursor", &cursor]);
    assert!(!mixed.status.success());
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("--sort duration"));

    // Bad values are refused, naming the flag.
    for (flag, value) in [
        ("--kind", "robot"),
        ("--error-kind", "oops"),
        ("--correlation", "42"),
    ] {
        let out = run_cli(&data, &["runs", "list", flag, value]);
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(&format!("error: {flag}: ")), "{stderr}");
    }
    assert_eq!(running.kind, RunKind::Agent);
}

#[test]
fn runs_tree_shows_a_requests_runs_from_the_table_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = Run::agent("triage", JAN_1, 8_000);
    let first = Run::call(&agent, "gmail", "list_messages");
    let second = Run::call(&agent, "slack", "post_message").failing(ErrorKind::RateLimited);
    let unrelated = Run::agent("echo", JAN_1 + 5, 100);
    record(
        &data,
        &[agent.clone(), first.clone(), second.clone(), unrelated],
    );
    // The table alone: no log needed.
    std::fs::remove_dir_all(data.join(neonhub::LOG_DIR)).unwrap();

    let by_run = json(&run_cli(
        &data,
        &[
            "runs",
            "tree",
            &second.run_id.to_string(),
            "--format",
            "json",
        ],
    ));
    let correlation = agent.correlation.to_string();
    let by_correlation = json(&run_cli(
        &data,
        &["runs", "tree", &correlation, "--format", "json"],
    ));
    assert_eq!(by_run, by_correlation);
    assert_eq!(by_run["correlation_id"], correlation.as_str());
    assert_eq!(by_run["truncated"], false);
    let runs = by_run["runs"].as_array().unwrap();
    assert_eq!(
        ids(runs),
        [agent.run_id, first.run_id, second.run_id].map(|r| r.to_string())
    );
    assert_eq!(runs[1]["parent_run_id"], agent.run_id.to_string().as_str());

    let table = stdout(&run_cli(&data, &["runs", "tree", &correlation]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains(&correlation), "{table}");
    let row = |id: &str| *lines.iter().find(|l| l.contains(id)).unwrap();
    let root = row(&agent.run_id.to_string());
    let child = row(&second.run_id.to_string());
    assert!(root.starts_with(&agent.run_id.to_string()), "{table}");
    assert!(child.trim_start().starts_with("└─ "), "{table}");
    assert!(
        child.contains("rate_limited") && child.contains("connector slack"),
        "{table}"
    );
    assert!(
        child.contains("post_message") && child.contains("failed"),
        "{table}"
    );

    let lines = jsonl(&run_cli(
        &data,
        &["runs", "tree", &correlation, "--format", "jsonl"],
    ));
    assert_eq!(lines.len(), 3);
    let csv_text = stdout(&run_cli(
        &data,
        &["runs", "tree", &correlation, "--format", "csv"],
    ));
    assert_eq!(csv_text.lines().count(), 4);

    let unknown = run_cli(
        &data,
        &["runs", "tree", "0193a8f0-0000-7000-8000-000000000000"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no run and no correlation"));
}

#[test]
fn report_takes_until_and_counts_by_hour() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runs = [
        Run::agent("email", JAN_1 + 60_000_000, 1_000),
        Run::agent("email", JAN_1 + 120_000_000, 3_000),
        Run::agent("email", JAN_1 + 180_000_000, 0).failing(ErrorKind::Agent),
        Run::agent("email", JAN_1 + 2 * HOUR + 5, 7_000),
        Run::agent("sms", JAN_1 + 2 * HOUR + 9, 4_000),
    ];
    record(&data, &runs);

    // --until: the first hour only.
    let report = json(&run_cli(
        &data,
        &[
            "report",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-01T01:00:00Z",
            "--format",
            "json",
        ],
    ));
    let agents = report["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{report}");
    assert_eq!(agents[0]["runs"], 3);
    assert_eq!(agents[0]["failed"], 1);

    // --by hour: every bucket of the window, oldest first, empty ones zero.
    let timeline = json(&run_cli(
        &data,
        &[
            "report",
            "--by",
            "hour",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-01T03:00:00Z",
            "--format",
            "json",
        ],
    ));
    assert_eq!(timeline["by"], "hour");
    let buckets = timeline["buckets"].as_array().unwrap();
    let runs_per: Vec<u64> = buckets
        .iter()
        .map(|b| b["runs"].as_u64().unwrap())
        .collect();
    assert_eq!(runs_per, [3, 0, 2]);
    assert_eq!(buckets[0]["start"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(buckets[0]["failures"], 1);
    assert_eq!(buckets[0]["p50_ms"], 2.0);
    assert_eq!(buckets[0]["p99_ms"], 3.0);
    assert!(buckets[1]["p50_ms"].is_null());
    // Narrowed to one agent.
    let sms = json(&run_cli(
        &data,
        &[
            "report",
            "--by",
            "hour",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-01T03:00:00Z",
            "--agent",
            "sms",
            "--kind",
            "agent",
            "--format",
            "json",
        ],
    ));
    let runs_per: Vec<u64> = sms["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["runs"].as_u64().unwrap())
        .collect();
    assert_eq!(runs_per, [0, 0, 1]);
    let csv_text = stdout(&run_cli(
        &data,
        &[
            "report",
            "--by",
            "day",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-03",
            "--format",
            "csv",
        ],
    ));
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines[0], "start,runs,failures,p50_ms,p95_ms,p99_ms");
    assert_eq!(lines[1], "2026-01-01T00:00:00.000000Z,5,1,3,7,7");
    assert_eq!(lines[2], "2026-01-02T00:00:00.000000Z,0,0,,,");

    // Too many buckets: refused, saying to narrow the window.
    let wide = run_cli(
        &data,
        &[
            "report",
            "--by",
            "hour",
            "--since",
            "2025-01-01",
            "--until",
            "2026-01-01",
        ],
    );
    assert!(!wide.status.success());
    let stderr = String::from_utf8_lossy(&wide.stderr);
    assert!(stderr.contains("narrow"), "{stderr}");
}

#[test]
fn a_bare_epoch_number_is_refused_and_an_epoch_with_its_unit_is_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    record(
        &data,
        &[
            Run::agent("echo", JAN_1, 1_000),
            Run::agent("echo", JAN_1 + 1, 1_000),
        ],
    );
    let out = dir.path().join("as-of.sqlite");
    let out_path = out.to_string_lossy().into_owned();

    // Epoch seconds without a unit: once taken as microseconds (1970), so
    // replay rebuilt 0 events and exited 0. Now refused, with how to write
    // it, and nothing is written.
    let bare = run_cli(
        &data,
        &["replay", "--until-time", "1795975430", "--out", &out_path],
    );
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--until-time")
            && stderr.contains("1795975430s")
            && stderr.contains("1795975430ms"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused replay wrote {out_path}");
    for args in [
        &["runs", "list", "--since", "1795975430"][..],
        &["report", "--until", "1767225600"],
    ] {
        let refused = run_cli(&data, args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
    }

    // The same instant with a unit: an epoch time (the events were
    // recorded just now, so an hour from now covers them all).
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    for time in [
        format!("{later}s"),
        format!("{later}000ms"),
        format!("{later}000000us"),
    ] {
        let _ = std::fs::remove_file(&out);
        let text = stdout(&run_cli(
            &data,
            &["replay", "--until-time", &time, "--out", &out_path],
        ));
        assert!(text.starts_with("rebuilt 4 events"), "{time}: {text}");
    }
    // Below 1e9 seconds, a duration back from now.
    let _ = std::fs::remove_file(&out);
    let text = stdout(&run_cli(
        &data,
        &["replay", "--until-time", "999999999s", "--out", &out_path],
    ));
    assert!(text.starts_with("rebuilt 0 events"), "{text}");
    let listed = json(&run_cli(
        &data,
        &["runs", "list", "--since", "1767225600s", "--format", "json"],
    ));
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
    let listed = json(&run_cli(
        &data,
        &[
            "runs",
            "list",
            "--until",
            "1767225600000000us",
            "--format",
            "json",
        ],
    ));
    assert_eq!(listed["runs"].as_array().unwrap().len(), 0);

    let help = stdout(&run_cli(&data, &["runs", "list", "--help"]));
    assert!(
        help.contains("1795975430s") && help.contains("1e9 seconds"),
        "{help}"
    );
}

#[test]
fn listing_every_run_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    many_runs(&data);
    let mut child = neonhub()
        .arg("--data-dir")
        .arg(&data)
        .args(["runs", "list", "--all"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line read, then the reader goes.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("RUN ID"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
