//! The whole service on EventStoreDB (the in-process test server): the real
//! binary with `--store eventstoredb` serves runs over HTTP; the AgentRun
//! table, /metrics and what the submitters were told agree; `runs show`,
//! `runs list`, `report`, `replay`, `run` and `audit verify` work on it, and
//! a second data directory rebuilds the same table from the shared store.
//! The URL carries credentials, which never show in the output.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use neonhub_esdb_test_server::TestServer;
use neonhub_test_support::service::{ServeProcess, neonhub, sample};
use neonhub_test_support::wait_until;
use neonhub_test_support::workload::mixed_run;
use serde_json::Value;

const PASSWORD: &str = "s3cret-pw-9f1c";

/// `neonhub --data-dir DATA --store eventstoredb --eventstore-url URL ARGS...`.
fn cli(data: &Path, url: &str, args: &[&str]) -> Output {
    neonhub()
        .arg("--data-dir")
        .arg(data)
        .args(["--store", "eventstoredb", "--eventstore-url", url])
        .args(args)
        .output()
        .unwrap()
}

/// Asserts success and no credentials in the output; returns stdout.
fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {stdout}{stderr}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{what} printed the password: {stdout}{stderr}"
    );
    stdout
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The per-target (agent) counts of the report, as `(target, status) -> n`.
fn report_counts(report: &Value) -> HashMap<(String, String), u64> {
    let mut counts = HashMap::new();
    for row in report["agents"].as_array().unwrap() {
        if row["kind"] != "agent" {
            continue;
        }
        for status in ["succeeded", "failed"] {
            let n = row[status].as_u64().unwrap();
            if n > 0 {
                counts.insert(
                    (
                        row["target"].as_str().unwrap().to_owned(),
                        status.to_owned(),
                    ),
                    n,
                );
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_end_to_end_on_eventstoredb() {
    let server = TestServer::start().expect("start the EventStoreDB test server");
    let seeded = server.event_count();
    let url = format!("esdb://admin:{PASSWORD}@{}?tls=false", server.addr());
    let dir = tempfile::tempdir().unwrap();

    // No URL: a usage error naming the option, and nothing runs.
    let missing = neonhub()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--store", "eventstoredb", "runs", "list"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--eventstore-url"), "{stderr}");

    // `serve` on EventStoreDB; its banner names the store without the password.
    let serve = ServeProcess::spawn(
        dir.path(),
        &["--store", "eventstoredb", "--eventstore-url", &url],
    );
    let client = reqwest::Client::new();
    let responses = futures_util::future::join_all((0..40).map(|i| {
        let body = mixed_run(i);
        let client = &client;
        let base = &serve.base;
        async move {
            let response = client
                .post(format!("{base}/v1/runs"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let mut told: HashMap<String, (String, String)> = HashMap::new();
    for (status, body) in responses {
        assert_eq!(status, 200, "{body}");
        told.insert(
            body["run_id"].as_str().unwrap().to_owned(),
            (
                body["target"].as_str().unwrap().to_owned(),
                body["status"].as_str().unwrap().to_owned(),
            ),
        );
    }
    assert_eq!(told.len(), 40);
    let failed = told.values().filter(|(_, s)| s == "failed").count();
    assert!(
        (1..40).contains(&failed),
        "{failed} failed: the mix has both"
    );
    assert!(
        server.event_count() >= seeded + 80,
        "the events are in EventStoreDB"
    );

    // The table (over HTTP) holds every run as its submitter was told.
    for (run_id, (target, status)) in &told {
        let run: Value = client
            .get(format!("{}/v1/runs/{run_id}", serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(run["target"], *target, "{run}");
        assert_eq!(run["status"], *status, "{run}");
    }
    // /metrics counts the same runs per agent and status.
    let mut expected: HashMap<(String, String), u64> = HashMap::new();
    for (target, status) in told.values() {
        *expected
            .entry((target.clone(), status.clone()))
            .or_default() += 1;
    }
    let metrics_url = format!("{}/metrics", serve.base);
    wait_until("/metrics to count every run", || {
        let client = client.clone();
        let metrics_url = metrics_url.clone();
        let expected = expected.clone();
        async move {
            let metrics = client
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            expected.iter().all(|((target, status), n)| {
                let series =
                    format!("neonhub_agent_runs_total{{agent=\"{target}\",status=\"{status}\"}}");
                sample(&metrics, &series) == *n as f64
            })
        }
    })
    .await;

    let (code, rest) = serve.terminate();
    assert_eq!(code, Some(0), "{rest}");
    assert!(!rest.contains(PASSWORD), "{rest}");

    // `runs show`: the row and the run's events, read from EventStoreDB.
    let (some_run, (_, some_status)) = told.iter().next().unwrap();
    let shown = json_of(&ok(
        &cli(
            dir.path(),
            &url,
            &["runs", "show", some_run, "--format", "json"],
        ),
        "runs show",
    ));
    assert_eq!(shown["status"], *some_status, "{shown}");
    let types: Vec<&str> = shown["events"]
        .as_array()
        .expect("the run's events")
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"run.started.v1"), "{shown}");
    assert_eq!(
        types.last().copied(),
        Some(format!("run.{some_status}.v1").as_str())
    );

    // `report` agrees with what the submitters were told.
    let report = json_of(&ok(
        &cli(dir.path(), &url, &["report", "--format", "json"]),
        "report",
    ));
    assert_eq!(report_counts(&report), expected, "{report}");

    // `run`: one more run through the service on EventStoreDB.
    let one = json_of(&ok(
        &cli(
            dir.path(),
            &url,
            &[
                "run",
                "echo",
                "--input",
                r#"{"one": "more"}"#,
                "--format",
                "json",
            ],
        ),
        "run",
    ));
    assert_eq!(one["status"], "succeeded", "{one}");
    *expected
        .entry(("echo".to_owned(), "succeeded".to_owned()))
        .or_default() += 1;

    // `audit verify`: no hash chain there, and it says so; decoding and the
    // table are checked.
    let audit = ok(&cli(dir.path(), &url, &["audit", "verify"]), "audit verify");
    assert_eq!(audit.lines().count(), 1, "{audit}");
    assert!(
        audit.starts_with("ok (eventstoredb: no hash chain"),
        "{audit}"
    );
    let matched: usize = audit
        .split(" runs match the AgentRun table")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of matching runs in {audit}"));

    // `replay` rebuilds the same report into a fresh file.
    let out = dir.path().join("replayed.sqlite");
    let replayed = ok(
        &cli(
            dir.path(),
            &url,
            &["replay", "--out", out.to_str().unwrap()],
        ),
        "replay",
    );
    assert!(replayed.contains("rebuilt "), "{replayed}");
    assert!(out.exists());

    // A second data directory (another node) builds the same table from the
    // shared store (`runs list` and `report` read the table alone).
    let other = tempfile::tempdir().unwrap();
    let table = other.path().join(neonhub::PROJECTION_FILE);
    ok(
        &cli(
            other.path(),
            &url,
            &["replay", "--out", table.to_str().unwrap()],
        ),
        "replay into a fresh data directory",
    );
    let listed = json_of(&ok(
        &cli(
            other.path(),
            &url,
            &["runs", "list", "--limit", "500", "--format", "json"],
        ),
        "runs list in a fresh data directory",
    ));
    // Every run the audit matched, agents' and connectors'.
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        matched,
        "{listed}"
    );
    let agent_runs: Vec<&Value> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "agent")
        .collect();
    assert_eq!(agent_runs.len(), 41, "{listed}");
    for (run_id, (_, status)) in &told {
        let row = agent_runs
            .iter()
            .find(|r| r["run_id"] == run_id.as_str())
            .unwrap_or_else(|| panic!("{run_id} missing: {listed}"));
        assert_eq!(row["status"], *status);
    }
    let report = json_of(&ok(
        &cli(other.path(), &url, &["report", "--format", "json"]),
        "report in a fresh data directory",
    ));
    assert_eq!(report_counts(&report), expected, "{report}");

    // A table that no longer matches the log fails the audit, non-zero.
    let db = rusqlite::Connection::open(dir.path().join(neonhub::PROJECTION_FILE)).unwrap();
    let changed = db
        .execute(
            "UPDATE agent_runs SET status = 'failed' WHERE run_id = ?1",
            [one["run_id"].as_str().unwrap()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let bad = cli(dir.path(), &url, &["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{stderr}");
    assert!(
        stderr.contains("audit failed at position") && stderr.contains("does not match"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
