//! A log of many segments holds a bounded number of them open, however many
//! are read: handles come from a cache, not one per segment for the life of
//! the process.

use std::path::Path;

use neonhub_events::{EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Position, StreamId};
use neonhub_test_support::event_data;

/// Open file descriptors of this process on files in `dir`.
fn open_in(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[tokio::test]
async fn reading_200_segments_keeps_a_bounded_number_open() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let options = LogOptions::default().with_segment_size(4096);
    {
        let log = EmbeddedLog::open(&dir_path, options.clone()).unwrap();
        let s = StreamId::new("s").unwrap();
        for i in 0..800u32 {
            log.append(
                &s,
                ExpectedRevision::Any,
                vec![event_data("test.event.v1", vec![i as u8; 1000])],
            )
            .await
            .unwrap();
        }
    }
    let segments = std::fs::read_dir(&dir_path)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments >= 200, "{segments} segments");

    for log in [
        EmbeddedLog::open(&dir_path, options.clone()).unwrap(),
        EmbeddedLog::open_read_only(&dir_path, options.clone()).unwrap(),
    ] {
        let all = log.read_all(Position::START, usize::MAX).await.unwrap();
        assert_eq!(all.len(), 800);
        assert_eq!(log.verify().unwrap().events, 800);
        let open = open_in(&dir_path);
        // Segments and their index files: more than 400 files were read, at
        // most 256 (the cache) stay open, plus the lock and the last segment.
        assert!(
            open <= 260,
            "{open} files open in the log directory for {segments} segments"
        );
    }
}
