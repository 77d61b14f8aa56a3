//! `neonhub log archive` moves old sealed segments out of the live log and
//! the audit still holds: `audit verify` proves the live log continues the
//! archived chain (and re-checks the archive with `--archive`), archived
//! runs keep their rows, damage to the archive is named, and a bad
//! `--before` changes nothing (exit status 2).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use neonhub_events::{
    Codec, EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Metadata, Revision, RunId,
    SharedStore, Timestamp,
};
use neonhub_projections::{RebuildOptions, rebuild};
use neonhub_test_support::service::{ServeProcess, run_body, run_cli, stdout};
use neonhub_test_support::workload::{run_started, run_succeeded};

/// Appends `n` runs (`RunStarted`, then `RunSucceeded`); their ids.
async fn runs(log: &EmbeddedLog, n: usize) -> Vec<RunId> {
    let codec = Codec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = RunId::new();
        let stream = id.stream();
        let started = codec
            .encode(&run_started(id, uuid::Uuid::now_v7()), Metadata::default())
            .unwrap();
        log.append(&stream, ExpectedRevision::NoStream, vec![started])
            .await
            .unwrap();
        let done = codec
            .encode(&run_succeeded(id), Metadata::default())
            .unwrap();
        log.append(&stream, ExpectedRevision::Exact(Revision(0)), vec![done])
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// A data directory whose log has old runs in its first small segments and
/// newer ones after the returned cut-off (RFC 3339), with its table.
async fn data_dir(data: &Path) -> (Vec<RunId>, String, String) {
    let options = LogOptions::default().with_segment_size(16 * 1024);
    let log = EmbeddedLog::open(data.join("log"), options).unwrap();
    let old = runs(&log, 120).await;
    // An anchor early in the log, in a segment that will be archived.
    let hash: String = log
        .chain_at(neonhub_events::Position(10))
        .unwrap()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let anchor = format!(r#"{{"position": 10, "hash": "{hash}"}}"#);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cut = Timestamp::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    runs(&log, 80).await;
    let log = Arc::new(log);
    let store: SharedStore = log.clone();
    rebuild(
        &store,
        data.join("agent_runs.sqlite"),
        RebuildOptions::default(),
    )
    .await
    .unwrap();
    log.close();
    drop(store);
    let at = chrono::DateTime::from_timestamp_micros(cut.0 as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    (old, at, anchor)
}

fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().len())
        })
        .collect();
    v.sort();
    v
}

fn ok(output: &std::process::Output) -> String {
    let out = stdout(output);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn failed(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "{}", stdout(output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn archiving_keeps_the_audit_provable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let to = tmp.path().join("cold");
    let to_arg = to.to_str().unwrap();
    let (old, cut, anchor) = data_dir(&data).await;
    let before = ok(&run_cli(&data, &["audit", "verify"]));

    // A bad --before: a usage error, and nothing changes.
    let log_dir = data.join("log");
    let files = listing(&log_dir);
    for bad in ["yesterday", "30x", "", "2026-13-45T00:00:00Z"] {
        let out = run_cli(&data, &["log", "archive", "--before", bad, "--to", to_arg]);
        assert_eq!(out.status.code(), Some(2), "--before {bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--before"), "{stderr}");
        assert_eq!(listing(&log_dir), files, "--before {bad:?} changed the log");
        assert!(!to.exists(), "--before {bad:?} created the archive");
    }

    let archived = ok(&run_cli(
        &data,
        &["log", "archive", "--before", &cut, "--to", to_arg],
    ));
    assert!(archived.starts_with("archived "), "{archived}");
    assert!(log_dir.join("ARCHIVE.json").exists());
    assert!(to.join("MANIFEST.json").exists());

    // Without the archive: the live log continues the recorded hash.
    let live = ok(&run_cli(&data, &["audit", "verify"]));
    assert!(live.contains("archived and not re-checked"), "{live}");
    // The head hash is the one before archiving.
    let head = |line: &str| {
        line.split("head hash ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(head(&live), head(&before));
    // With it: re-checked from the first event.
    let full = ok(&run_cli(&data, &["audit", "verify", "--archive", to_arg]));
    assert!(full.contains("re-checked in the archive"), "{full}");
    assert_eq!(head(&full), head(&before));
    // An anchor in the archived part: checked in the archive with
    // `--archive`, said to be unchecked without it.
    let out = run_cli(&data, &["audit", "verify", "--anchor", &anchor]);
    let text = ok(&out);
    assert!(
        text.contains("1 anchor(s) in the archived part not checked"),
        "{text}"
    );
    let text = ok(&run_cli(
        &data,
        &["audit", "verify", "--anchor", &anchor, "--archive", to_arg],
    ));
    assert!(text.contains("the anchor holds"), "{text}");
    let mut json: serde_json::Value = serde_json::from_str(&anchor).unwrap();
    let hash = json["hash"].as_str().unwrap().to_owned();
    let flipped = if hash.starts_with('0') { "1" } else { "0" };
    json["hash"] = format!("{flipped}{}", &hash[1..]).into();
    let forged = json.to_string();
    let stderr = failed(&run_cli(
        &data,
        &["audit", "verify", "--anchor", &forged, "--archive", to_arg],
    ));
    assert!(stderr.contains("anchor 1 of 1"), "{stderr}");
    // Archived runs keep their rows.
    let shown = ok(&run_cli(&data, &["runs", "show", &old[0].to_string()]));
    assert!(shown.contains("succeeded"), "{shown}");
    assert!(shown.contains("archived to"), "{shown}");

    // Damage to an archived file is named by `--archive`.
    let zst = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".log.zst"))
        .unwrap();
    let original = std::fs::read(&zst).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&zst).unwrap();
    let at = original.len() / 3;
    f.write_all_at(&[original[at] ^ 1], at as u64).unwrap();
    drop(f);
    let name = zst.file_name().unwrap().to_str().unwrap();
    let stderr = failed(&run_cli(&data, &["audit", "verify", "--archive", to_arg]));
    assert!(stderr.contains(name), "{stderr}");
    std::fs::write(&zst, &original).unwrap();

    // A removed archive manifest, and a removed live one, are named.
    std::fs::rename(to.join("MANIFEST.json"), tmp.path().join("m")).unwrap();
    let stderr = failed(&run_cli(&data, &["audit", "verify", "--archive", to_arg]));
    assert!(stderr.contains("MANIFEST.json"), "{stderr}");
    std::fs::rename(tmp.path().join("m"), to.join("MANIFEST.json")).unwrap();
    std::fs::rename(log_dir.join("ARCHIVE.json"), tmp.path().join("a")).unwrap();
    let stderr = failed(&run_cli(&data, &["audit", "verify"]));
    assert!(stderr.contains("ARCHIVE.json"), "{stderr}");
    std::fs::rename(tmp.path().join("a"), log_dir.join("ARCHIVE.json")).unwrap();
    ok(&run_cli(&data, &["audit", "verify", "--archive", to_arg]));
}

/// `GET /v1/runs/{id}/events`: the status and the body.
async fn events(base: &str, run_id: RunId) -> (u16, serde_json::Value) {
    let answer = reqwest::get(format!("{base}/v1/runs/{run_id}/events"))
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_running_while_segments_are_archived_and_starts_after() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let to = tmp.path().join("cold");
    let to_arg = to.to_str().unwrap();
    let (old, cut, _) = data_dir(&data).await;
    let newest = runs_after(&data).await;
    let serve = ServeProcess::spawn(&data, &[]);
    let (status, _) = events(&serve.base, old[0]).await;
    assert_eq!(status, 200, "before archiving");

    // serve holds the log; archiving goes ahead beside it.
    let archived = ok(&run_cli(
        &data,
        &["log", "archive", "--before", &cut, "--to", to_arg],
    ));
    assert!(archived.starts_with("archived "), "{archived}");
    let (status, body) = events(&serve.base, old[0]).await;
    assert_eq!(status, 410, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cold"), "{message}");
    assert_eq!(body["error"]["code"], "archived");
    let (status, _) = events(&serve.base, newest).await;
    assert_eq!(status, 200);
    // New runs go on, and read back.
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{}/v1/runs", serve.base))
        .json(&run_body("echo", serde_json::json!({"after": "archive"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));

    // A new serve starts on the archived log (start-up recovery and the
    // table's catch-up begin after the archive) and answers the same.
    let serve = ServeProcess::spawn(&data, &[]);
    let (status, _) = events(&serve.base, old[1]).await;
    assert_eq!(status, 410);
    let (status, _) = events(&serve.base, newest).await;
    assert_eq!(status, 200);
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
    ok(&run_cli(&data, &["audit", "verify", "--archive", to_arg]));
}

/// One more run appended after `data_dir`, whose id is returned.
async fn runs_after(data: &Path) -> RunId {
    let options = LogOptions::default().with_segment_size(16 * 1024);
    let log = Arc::new(EmbeddedLog::open(data.join("log"), options).unwrap());
    let id = runs(&log, 1).await[0];
    let store: SharedStore = log.clone();
    // Keep the table caught up, as serve would.
    let table = data.join("agent_runs.sqlite");
    std::fs::remove_file(&table).unwrap();
    rebuild(&store, &table, RebuildOptions::default())
        .await
        .unwrap();
    log.close();
    id
}
