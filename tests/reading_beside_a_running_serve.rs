//! While `neonhub serve` holds the log, `runs show` (with the run's events)
//! and `replay` read a read-only snapshot beside it instead of failing on the
//! directory lock; `run`, which would append, is refused with a clear error.

use neonhub_test_support::service::{ServeProcess, run_body, run_cli};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_show_and_replay_work_beside_serve_and_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(dir.path(), &[]);
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{}/v1/runs", serve.base))
        .json(&run_body("echo", json!({"hello": "beside"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = answer["run_id"].as_str().expect("a run id").to_string();
    assert_eq!(answer["status"], "succeeded", "{answer}");

    let show = run_cli(dir.path(), &["runs", "show", &run_id, "--format", "json"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    let types: Vec<&str> = shown["events"]
        .as_array()
        .expect("the run's events")
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["run.started.v1", "run.succeeded.v1"]);

    let out = dir.path().join("audit-copy.sqlite");
    let replay = run_cli(dir.path(), &["replay", "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(stdout.contains("rebuilt 2 events"), "{stdout}");
    assert!(out.exists());

    let run = run_cli(dir.path(), &["run", "echo", "--input", "{}"]);
    assert!(!run.status.success(), "a second writer ran beside serve");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("already open"), "{stderr}");

    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
