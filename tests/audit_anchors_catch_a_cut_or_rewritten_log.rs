//! An anchor (`neonhub audit anchor`) kept outside neonhub catches what the
//! hash chain alone cannot: a cut tail, a deleted last segment, a history
//! rewritten and re-chained from the start. `audit verify --anchor` fails
//! naming the anchor, changes no file, and a malformed anchor is a usage
//! error (exit 2) saying what is wrong.

use std::path::{Path, PathBuf};

use neonhub_events::{
    Codec, Direction, EmbeddedLog, EventStore, ExpectedRevision, LogOptions, ReadFrom, RunEvent,
};
use neonhub_projections::fixture::{Appender, FixtureSpec, script};
use neonhub_test_support::files::{assert_unchanged, fingerprints};
use neonhub_test_support::service::run_cli;

/// The table is gone (removed, or never built: `audit verify` reads only).
fn remove_table(data: &Path) {
    let table = data.join(neonhub::PROJECTION_FILE);
    if table.exists() {
        std::fs::remove_file(table).unwrap();
    }
}

fn cli(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_cli(data, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn echo_runs(data: &Path, notes: &[&str]) {
    for note in notes {
        let input = format!(r#"{{"note": "{note}"}}"#);
        let (code, _, err) = cli(data, &["run", "echo", "--input", &input]);
        assert_eq!(code, Some(0), "{err}");
    }
}

/// `neonhub audit anchor --format json`, checked for its shape.
fn anchor(data: &Path) -> String {
    let (code, out, err) = cli(data, &["audit", "anchor", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let anchor = out.trim().to_owned();
    let value: serde_json::Value = serde_json::from_str(&anchor).unwrap();
    let position = value["position"].as_u64().unwrap();
    assert_eq!(value["events"].as_u64(), Some(position + 1), "{anchor}");
    assert_eq!(value["hash"].as_str().unwrap().len(), 64, "{anchor}");
    assert!(
        chrono_like(value["at"].as_str().unwrap()),
        "{anchor}: at is not RFC 3339"
    );
    anchor
}

fn chrono_like(at: &str) -> bool {
    at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T'
}

fn field(anchor: &str, name: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(anchor).unwrap();
    match &value[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn log_dir(data: &Path) -> PathBuf {
    data.join(neonhub::LOG_DIR)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Verifies with `anchor`, expecting it to fail naming it for `why`,
/// changing no file; and shows that without the anchor the log passes.
fn assert_anchor_fails(data: &Path, anchor: &str, why: &str) {
    let before = fingerprints(data);
    let (code, out, err) = cli(data, &["audit", "verify", "--anchor", anchor]);
    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = err.lines().collect();
    let name = format!(
        "anchor 1 of 1 (position {} hash {} (taken {})): ",
        field(anchor, "position"),
        field(anchor, "hash"),
        field(anchor, "at")
    );
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&name) && lines[0].contains(why),
        "{}\nexpected {name}...{why}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "error: audit failed: the log does not hold 1 of 1 anchor(s), named above; it was cut or \
         rewritten after they were taken: restore it from a backup and never edit it"
    );
    assert_unchanged(data, &before);
}

#[test]
fn a_cut_tail_with_the_table_removed_fails_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    echo_runs(&data, &["aaaa", "bbbb"]);
    let older = dir.path().join("older-log");
    copy_dir(&log_dir(&data), &older);
    echo_runs(&data, &["cccc", "dddd"]);
    let anchor = anchor(&data);
    assert_eq!(field(&anchor, "position"), "7");
    // Cut the last two runs: the log is the prefix it was, and the table
    // that knew them is gone.
    std::fs::remove_dir_all(log_dir(&data)).unwrap();
    copy_dir(&older, &log_dir(&data));
    remove_table(&data);

    assert_anchor_fails(
        &data,
        &anchor,
        "the log ends before position 7 (its last event is at 3): events up to the anchor were cut or a segment removed",
    );
}

#[tokio::test]
async fn a_deleted_last_segment_fails_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let log = EmbeddedLog::open(
            log_dir(&data),
            LogOptions::default().with_segment_size(4096),
        )
        .unwrap();
        Appender::new()
            .append(&log, &script(&FixtureSpec::new(40)))
            .await
            .unwrap();
    }
    let (code, out, err) = cli(&data, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let anchor = anchor(&data);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(log_dir(&data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != EmbeddedLog::LOCK_FILE)
        .collect();
    segments.sort();
    assert!(segments.len() > 2, "{segments:?}");
    std::fs::remove_file(segments.last().unwrap()).unwrap();
    remove_table(&data);

    assert_anchor_fails(&data, &anchor, "the log ends before position");
}

#[tokio::test]
async fn a_rewritten_and_rechained_history_fails_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    echo_runs(&data, &["aaaa", "bbbb", "cccc"]);
    let anchor = anchor(&data);
    // A forger rewrites run 2's input and writes every event again, in the
    // same order and at the same positions, through the log itself: the
    // chain is recomputed from the start and is sound.
    let forged = dir.path().join("forged-log");
    {
        let old = EmbeddedLog::open_read_only(log_dir(&data), LogOptions::default()).unwrap();
        let new = EmbeddedLog::open(&forged, LogOptions::default()).unwrap();
        let codec = Codec::new();
        for recorded in old
            .read_all(neonhub_events::Position::START, 100)
            .await
            .unwrap()
        {
            let mut event = codec.decode(&recorded).unwrap();
            if let RunEvent::Started(s) = &mut event
                && s.input == serde_json::json!({"note": "bbbb"})
            {
                s.input = serde_json::json!({"note": "BBBB"});
            }
            let mut data = codec.encode(&event, recorded.metadata).unwrap();
            data.id = recorded.id;
            let written = new
                .append(&recorded.stream, ExpectedRevision::Any, vec![data])
                .await
                .unwrap();
            assert_eq!(written.last_position, recorded.position);
        }
        let rewritten = new
            .read_stream(
                &old.read_all(neonhub_events::Position(2), 1).await.unwrap()[0].stream,
                Direction::Forwards,
                ReadFrom::Start,
                1,
            )
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&rewritten[0].payload).contains("BBBB"));
    }
    std::fs::remove_dir_all(log_dir(&data)).unwrap();
    std::fs::rename(&forged, log_dir(&data)).unwrap();
    remove_table(&data);
    // The chain alone cannot tell: it was recomputed.
    let (code, out, err) = cli(&data, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    remove_table(&data);

    assert_anchor_fails(&data, &anchor, "the log holds position 5 with hash ");
    assert_anchor_fails(&data, &anchor, ": the history up to it was rewritten");
}

#[test]
fn a_sound_log_holds_its_anchors_read_from_json_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    echo_runs(&data, &["aaaa"]);
    let first = anchor(&data);
    echo_runs(&data, &["bbbb"]);
    let second = anchor(&data);
    let file = dir.path().join("anchor.json");
    std::fs::write(&file, &second).unwrap();
    let at_file = format!("@{}", file.display());
    let before = fingerprints(&data);
    let (code, out, err) = cli(
        &data,
        &["audit", "verify", "--anchor", &first, "--anchor", &at_file],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.trim_end().ends_with("; all 2 anchors hold"), "{out}");
    assert_unchanged(&data, &before);
    // The text form is for people and says how to use it.
    let (code, out, _) = cli(&data, &["audit", "anchor"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("position  3\nhash      "), "{out}");
    assert!(
        out.contains("neonhub audit verify --anchor '{\"position\": 3, "),
        "{out}"
    );
}

#[test]
fn a_malformed_anchor_is_a_usage_error_saying_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    echo_runs(&data, &["aaaa"]);
    let hash = "ab".repeat(32);
    for (anchor, says) in [
        (
            "{\"position\": 1".to_owned(),
            "the anchor is not valid JSON",
        ),
        (
            format!("{{\"hash\": \"{hash}\"}}"),
            "the anchor has no \"position\"",
        ),
        (
            "{\"position\": 1, \"hash\": \"12\"}".to_owned(),
            "not 64 hex digits",
        ),
        (
            "@/nonexistent/anchor.json".to_owned(),
            "cannot read the anchor file \"/nonexistent/anchor.json\"",
        ),
    ] {
        let (code, _, err) = cli(&data, &["audit", "verify", "--anchor", &anchor]);
        assert_eq!(code, Some(2), "{anchor}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: --anchor: ") && err.contains(says),
            "{anchor}: {err}"
        );
    }
}
