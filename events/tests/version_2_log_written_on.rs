//! A log written before group frames (segment format version 2, the fixture
//! of commit 1b8a339) opens for writing: its segment is kept byte for byte,
//! appends go on in a new version 3 segment, and the hash chain runs across
//! both.

use std::path::Path;

use neonhub_events::{EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Position, StreamId};
use neonhub_test_support::event_data;

#[tokio::test]
async fn an_old_log_is_written_on_in_a_new_segment_and_its_chain_holds() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/log-1b8a339/log");
    let dir = tempfile::tempdir().unwrap();
    let old_segment = dir.path().join("seg-00000000000000000000.log");
    std::fs::copy(fixture.join("seg-00000000000000000000.log"), &old_segment).unwrap();
    let original = std::fs::read(&old_segment).unwrap();

    let before = {
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        let report = log.verify().unwrap();
        assert_eq!(report.events, 124);
        let written = log
            .append(
                &StreamId::new("after-upgrade").unwrap(),
                ExpectedRevision::NoStream,
                vec![event_data("test.event.v1", b"new".to_vec())],
            )
            .await
            .unwrap();
        assert_eq!(written.first_position, Position(124));
        report
    };
    assert_eq!(std::fs::read(&old_segment).unwrap(), original);
    assert!(dir.path().join("seg-00000000000000000124.log").exists());

    for log in [
        EmbeddedLog::open_read_only(dir.path(), LogOptions::default()).unwrap(),
        EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap(),
    ] {
        let report = log.verify().unwrap();
        assert_eq!(report.events, 125);
        let all = log.read_all(Position(120), 10).await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[4].payload, b"new");
        assert_ne!(report.head_hash, before.head_hash);
    }
}
