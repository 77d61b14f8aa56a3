//! Damage before the last group keeps the log from opening for writing and
//! is never cut by an open; `EmbeddedLog::repair` (`neonhub log repair`)
//! cuts there when asked and keeps every removed byte in quarantine files.

use std::os::unix::fs::FileExt;

use neonhub_events::{EmbeddedLog, Error, EventStore, ExpectedRevision, LogOptions, StreamId};
use neonhub_test_support::event_data;

#[tokio::test]
async fn corruption_refuses_to_open_and_repair_cuts_it_into_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        let s = StreamId::new("s").unwrap();
        for i in 0..30u8 {
            log.append(
                &s,
                ExpectedRevision::Any,
                vec![event_data("test.event.v1", vec![i; 100])],
            )
            .await
            .unwrap();
        }
    }
    let seg = dir.path().join("seg-00000000000000000000.log");
    let original = std::fs::read(&seg).unwrap();
    let at = original.len() as u64 / 2;
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[original[at as usize] ^ 0x20], at).unwrap();
    drop(f);
    let damaged = std::fs::read(&seg).unwrap();

    let offset = match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Err(Error::Corruption {
            segment, offset, ..
        }) => {
            assert_eq!(segment, seg);
            offset
        }
        other => panic!("damage in the middle opened: {other:?}"),
    };
    assert_eq!(std::fs::read(&seg).unwrap(), damaged, "a refused open cut");

    let repairs = EmbeddedLog::repair(dir.path()).unwrap();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(
        (repairs[0].segment.clone(), repairs[0].offset),
        (seg.clone(), offset)
    );
    let kept = std::fs::read(&repairs[0].quarantined[0]).unwrap();
    assert_eq!(
        kept,
        damaged[offset as usize..],
        "every removed byte is kept"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), damaged[..offset as usize]);

    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let events = log.verify().unwrap().events;
    assert!(events > 0 && events < 30, "{events}");
    assert!(log.torn_tail().is_none());
    drop(log);
    assert!(EmbeddedLog::repair(dir.path()).unwrap().is_empty());
}
