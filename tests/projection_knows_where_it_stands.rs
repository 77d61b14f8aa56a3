//! The projection knows where it stands: a table whose checkpoint is past
//! the log's head (an older log restored) is refused, by `audit verify` and
//! by `serve` (`/readyz` 503 with the reason, the log saying what to do,
//! `/metrics` showing it); and an outside client holding the SQLite file's
//! write lock only delays the projection, which catches up once it frees.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use neonhub_test_support::files::{assert_unchanged, fingerprints};
use neonhub_test_support::service::{InProcess, neonhub, run_body, run_cli, sample};
use neonhub_test_support::wait_until_within;

fn echo_runs(data: &Path, n: usize) {
    for i in 0..n {
        let input = format!(r#"{{"i": {i}}}"#);
        let out = run_cli(data, &["run", "echo", "--input", &input]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A data directory whose table has applied 8 events while its log, an
/// older copy restored, holds 4.
fn table_ahead_of_its_log(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    echo_runs(&data, 2);
    let log = data.join(neonhub::LOG_DIR);
    let older = dir.join("older-log");
    std::fs::create_dir_all(&older).unwrap();
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, older.join(path.file_name().unwrap())).unwrap();
    }
    echo_runs(&data, 2);
    std::fs::remove_dir_all(&log).unwrap();
    std::fs::rename(&older, &log).unwrap();
    data
}

#[test]
fn audit_verify_refuses_a_table_ahead_of_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = table_ahead_of_its_log(dir.path());
    let before = fingerprints(&data);

    let out = run_cli(&data, &["audit", "verify"]);

    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "error: audit failed: the AgentRun table's checkpoint 8 is past the log's head 4: the \
         table holds events this log does not (an older log restored, or its tail cut), so \
         nothing more is applied; if the log is the one to keep, stop neonhub, move the table \
         aside and rebuild it with `neonhub replay`"
    );
    assert_unchanged(&data, &before);
}

#[actix_rt::test]
async fn serve_is_not_ready_and_says_what_to_do_when_its_table_is_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let data = table_ahead_of_its_log(dir.path());
    let log_file = dir.path().join("serve.log");
    let mut child = neonhub()
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "no address in {line:?}; log: {:?}",
                std::fs::read_to_string(&log_file)
            )
        })
        .to_owned();
    let client = reqwest::Client::new();

    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    let status = ready.status().as_u16();
    let body: serde_json::Value = ready.json().await.unwrap();
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Runs still go to the log, the record.
    let run = client
        .post(format!("http://{addr}/v1/runs"))
        .json(&run_body("echo", serde_json::json!({"after": "restore"})))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let _ = std::process::Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_file).unwrap();

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "projection_stopped", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("checkpoint 8 is past the log's head 4")
            && message.contains("neonhub replay"),
        "{message}"
    );
    assert_eq!(
        sample(&metrics, "neonhub_projection_state{state=\"ahead\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "neonhub_projection_checkpoint"),
        8.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "neonhub_log_head"), 4.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "neonhub_projection_errors_total{kind=\"ahead\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(run, 200);
    assert!(
        log.contains("checkpoint 8 is past the log's head 4") && log.contains("`neonhub replay`"),
        "{log}"
    );
}

#[actix_rt::test]
async fn a_table_locked_by_an_outside_client_is_caught_up_once_it_frees() {
    let hub = InProcess::start().await;
    let db = hub.dir.path().join(neonhub::PROJECTION_FILE);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    // An outside client (a dashboard creating a view, say) holds the write
    // lock for 8 s, longer than SQLite's busy timeout.
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(8));
        conn.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    let mut run_ids = Vec::new();
    for i in 0..10 {
        let (status, body) = hub
            .post_run(&run_body("echo", serde_json::json!({ "i": i })))
            .await;
        assert_eq!(status, 200, "{body}");
        run_ids.push(body["run_id"].as_str().unwrap().to_owned());
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    holder.join().unwrap();

    wait_until_within(
        "every run submitted while the table was locked is in it",
        Duration::from_secs(60),
        || async {
            for run_id in &run_ids {
                if hub.get(&format!("/v1/runs/{run_id}")).await.0 != 200 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let metrics = hub.metrics().await;
    assert!(
        sample(
            &metrics,
            "neonhub_projection_errors_total{kind=\"sqlite_busy\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "neonhub_projection_state{state=\"following\"}"),
        1.0,
        "{metrics}"
    );
    let (status, body) = hub.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    hub.stop().await;
}
