//! `neonhub audit verify` passes on a sound log and fails, naming the first
//! bad position, on a forged record (hash chain), an event this build cannot
//! decode, and an audit table that no longer matches the log.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    EmbeddedLog, EventData, EventId, EventStore, ExpectedRevision, LogOptions, Metadata, RunId,
    event_types,
};
use neonhub_test_support::service::run_cli;

/// Three echo runs, one after the other: events 0..6, run `i` at 2i, 2i+1.
fn three_runs(data: &Path) {
    for note in ["aaaa", "bbbb", "cccc"] {
        let input = format!(r#"{{"note": "{note}"}}"#);
        let out = run_cli(data, &["run", "echo", "--input", &input]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn audit(data: &Path) -> (bool, String, String) {
    let out = run_cli(data, &["audit", "verify"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn first_segment(log: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != EmbeddedLog::LOCK_FILE)
        .collect();
    segments.sort();
    segments.remove(0)
}

#[test]
fn a_sound_log_passes_with_a_one_line_summary() {
    let dir = tempfile::tempdir().unwrap();
    three_runs(dir.path());
    let (ok, out, err) = audit(dir.path());
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("ok: 6 events, head position 6, head hash "),
        "{out}"
    );
}

#[test]
fn a_forged_record_breaks_the_chain_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    three_runs(dir.path());
    // Rewrite "bbbb" in record 2 (run 2's RunStarted) and fix its CRC, as a
    // forger would; the segment header is 64 bytes, a frame is length, CRC,
    // body, and a group frame (32 bytes, starting "NHgr") precedes each
    // group commit's records.
    let segment = first_segment(&dir.path().join(neonhub::LOG_DIR));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let skip_group = |offset: &mut u64| {
        let mut magic = [0u8; 4];
        file.read_exact_at(&mut magic, *offset).unwrap();
        if &magic == b"NHgr" {
            *offset += 32;
        }
    };
    let mut offset = 64u64;
    for _ in 0..2 {
        skip_group(&mut offset);
        let mut len = [0u8; 4];
        file.read_exact_at(&mut len, offset).unwrap();
        offset += 8 + u64::from(u32::from_le_bytes(len));
    }
    skip_group(&mut offset);
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, offset).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    file.read_exact_at(&mut body, offset + 8).unwrap();
    let at = body
        .windows(4)
        .position(|w| w == b"bbbb")
        .expect("record 2 is run 2's start");
    body[at + 3] = b'c';
    file.write_all_at(&body, offset + 8).unwrap();
    file.write_all_at(&crc32c::crc32c(&body).to_le_bytes(), offset + 4)
        .unwrap();
    drop(file);
    let (ok, out, err) = audit(dir.path());
    assert!(!ok, "the forgery passed: {out}");
    assert!(
        err.contains("audit failed at position 2") && err.contains("hash chain"),
        "{err}"
    );
}

#[tokio::test]
async fn an_event_this_build_cannot_decode_is_named() {
    let dir = tempfile::tempdir().unwrap();
    three_runs(dir.path());
    {
        let log =
            EmbeddedLog::open(dir.path().join(neonhub::LOG_DIR), LogOptions::default()).unwrap();
        let event = EventData {
            id: EventId::new(),
            event_type: event_types::RUN_STARTED.to_owned(),
            metadata: Metadata::default(),
            payload: b"\xc1 not messagepack".to_vec(),
        };
        let written = log
            .append(
                &RunId::new().stream(),
                ExpectedRevision::NoStream,
                vec![event],
            )
            .await
            .unwrap();
        assert_eq!(written.last_position.0, 6);
    }
    let (ok, out, err) = audit(dir.path());
    assert!(!ok, "{out}");
    assert!(
        err.contains("audit failed at position 6") && err.contains("decode"),
        "{err}"
    );
}

#[test]
fn a_table_that_no_longer_matches_the_log_is_named() {
    let dir = tempfile::tempdir().unwrap();
    three_runs(dir.path());
    let db = rusqlite::Connection::open(dir.path().join(neonhub::PROJECTION_FILE)).unwrap();
    let changed = db
        .execute(
            "UPDATE agent_runs SET status = 'failed' WHERE first_position = 4",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let (ok, out, err) = audit(dir.path());
    assert!(!ok, "{out}");
    assert!(
        err.contains("audit failed at position 4") && err.contains("does not match"),
        "{err}"
    );
}
