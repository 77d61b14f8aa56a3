//! A power loss tears only the last group commit: a zeroed page inside it,
//! even with complete records after it, is a torn write that opening cuts
//! (not corruption that keeps the log down), and whatever is cut is kept in a
//! quarantine file beside the segment, never deleted. A reader leaves it all
//! alone.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    EmbeddedLog, EventData, EventStore, ExpectedRevision, LogOptions, Position, StreamId,
};
use neonhub_test_support::event_data;

fn event(n: u64, len: usize) -> EventData {
    let mut payload = format!("event {n} ").into_bytes();
    payload.resize(len, b'x');
    event_data("test.event.v1", payload)
}

fn segment(dir: &Path) -> PathBuf {
    dir.join("seg-00000000000000000000.log")
}

fn quarantined(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("quarantine"))
        .collect();
    found.sort();
    found
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    all.sort();
    all
}

/// A log of 10 small appends, then one append of 40 events of 300 bytes (one
/// group of about 13 KB). Returns where that last append starts.
async fn log_with_a_large_last_append(dir: &Path) -> u64 {
    let log = EmbeddedLog::open(dir, LogOptions::default()).unwrap();
    let s = StreamId::new("s").unwrap();
    for i in 0..10 {
        log.append(&s, ExpectedRevision::Any, vec![event(i, 50)])
            .await
            .unwrap();
    }
    let start = std::fs::metadata(segment(dir)).unwrap().len();
    let batch = (10..50).map(|i| event(i, 300)).collect();
    log.append(&s, ExpectedRevision::Any, batch).await.unwrap();
    log.close();
    start
}

#[tokio::test]
async fn a_zeroed_page_in_the_last_group_is_cut_and_quarantined_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let start = log_with_a_large_last_append(dir.path()).await;
    let seg = segment(dir.path());
    let full = std::fs::read(&seg).unwrap();
    // The first whole page inside the last append never reached the disk
    // (LazyFS's zeroed page); complete records of the same append follow.
    let page = start.div_ceil(4096) * 4096;
    assert!(
        page + 4096 + 1000 < full.len() as u64,
        "the append spans pages"
    );
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0u8; 4096], page).unwrap();
    drop(f);
    let damaged = std::fs::read(&seg).unwrap();

    // A reader sees the 10 acknowledged appends and changes nothing.
    let before = files(dir.path());
    let reader = EmbeddedLog::open_read_only(dir.path(), LogOptions::default())
        .expect("a reader opens a log with a torn tail");
    assert_eq!(reader.head().await.unwrap(), Position(10));
    drop(reader);
    assert_eq!(files(dir.path()), before, "a read-only open changed files");

    // The writer opens on its own, cuts the torn append and keeps its bytes.
    let log = EmbeddedLog::open(dir.path(), LogOptions::default())
        .expect("a torn last group must not keep the log down");
    assert_eq!(log.head().await.unwrap(), Position(10));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), start);
    let q = quarantined(dir.path());
    assert_eq!(q.len(), 1, "one quarantine file: {q:?}");
    assert_eq!(std::fs::read(&q[0]).unwrap(), damaged[start as usize..]);
    // Appends continue where the acknowledged log ends.
    let written = log
        .append(
            &StreamId::new("s").unwrap(),
            ExpectedRevision::Any,
            vec![event(99, 10)],
        )
        .await
        .unwrap();
    assert_eq!(written.first_position, Position(10));
    assert_eq!(log.verify().unwrap().events, 11);
}

#[tokio::test]
async fn a_flipped_bit_in_the_last_record_is_kept_in_quarantine_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let start = log_with_a_large_last_append(dir.path()).await;
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, len - 40).unwrap();
    f.write_all_at(&[byte[0] ^ 1], len - 40).unwrap();
    drop(f);
    let damaged = std::fs::read(&seg).unwrap();

    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.head().await.unwrap(), Position(10));
    let torn = log.torn_tail().expect("the cut is reported");
    assert_eq!(torn.segment, seg);
    let q = quarantined(dir.path());
    assert_eq!(q.len(), 1, "the cut bytes are kept: {q:?}");
    assert_eq!(torn.quarantine.as_ref(), Some(&q[0]));
    // Every cut byte, the damaged one included, is in the quarantine file.
    let kept = std::fs::read(&q[0]).unwrap();
    assert_eq!(kept, damaged[torn.offset as usize..]);
    assert!(torn.offset <= start);
}
