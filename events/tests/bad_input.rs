//! Bad input is refused with an error that says what is wrong, and nothing
//! is written: oversized events, empty batches, a directory open elsewhere,
//! files that are not segments, segments of an unknown format version.

use std::os::unix::fs::FileExt;

use neonhub_events::{
    Durability, EmbeddedLog, Error, EventData, EventStore, ExpectedRevision, LogOptions, Position,
    StreamId,
};
use neonhub_test_support::event_data;

fn event(size: usize) -> EventData {
    event_data("test.event.v1", vec![7; size])
}

#[tokio::test]
async fn an_oversized_event_is_refused_and_nothing_of_its_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        EmbeddedLog::open(dir.path(), LogOptions::default().with_max_event_size(4096)).unwrap();
    let s = StreamId::new("big").unwrap();
    match log
        .append(
            &s,
            ExpectedRevision::Any,
            vec![event(10), event(5000), event(10)],
        )
        .await
    {
        Err(Error::EventTooLarge { size, max }) => {
            assert!(size > 5000);
            assert_eq!(max, 4096);
        }
        other => panic!("an oversized event was accepted: {other:?}"),
    }
    let message = Error::EventTooLarge {
        size: 5100,
        max: 4096,
    }
    .to_string();
    assert!(message.contains("5100") && message.contains("raise the limit"));
    assert_eq!(log.head().await.unwrap(), Position::START);
    log.append(&s, ExpectedRevision::NoStream, vec![event(3000)])
        .await
        .expect("an event under the limit");
    // The default limit is 4 MiB.
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    assert!(matches!(
        log.append(&s, ExpectedRevision::Any, vec![event(4 << 20)])
            .await,
        Err(Error::EventTooLarge { .. })
    ));
    log.append(&s, ExpectedRevision::Any, vec![event(4_000_000)])
        .await
        .expect("an event just under 4 MiB");
}

#[tokio::test]
async fn an_empty_batch_and_an_empty_type_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let s = StreamId::new("s").unwrap();
    assert!(matches!(
        log.append(&s, ExpectedRevision::Any, vec![]).await,
        Err(Error::InvalidInput(m)) if m.contains("at least one event")
    ));
    let mut nameless = event(1);
    nameless.event_type.clear();
    assert!(matches!(
        log.append(&s, ExpectedRevision::Any, vec![nameless]).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(log.head().await.unwrap(), Position::START);
}

#[test]
fn a_directory_open_elsewhere_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Err(e @ Error::Locked { .. }) => {
            let message = e.to_string();
            assert!(message.contains("already open"), "{message}");
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("a second open succeeded: {other:?}"),
    }
    drop(first);
    EmbeddedLog::open(dir.path(), LogOptions::default()).expect("the lock is released on drop");
}

#[test]
fn a_file_named_like_a_segment_that_is_not_one_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg-00000000000000000000.log");
    std::fs::write(
        &path,
        b"these are not the bytes you are looking for, not at all, no",
    )
    .unwrap();
    match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Err(e @ Error::BadSegment { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("not a neonhub log segment"), "{message}");
        }
        other => panic!("a foreign file was accepted: {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seg-12.log"), b"x").unwrap();
    assert!(matches!(
        EmbeddedLog::open(dir.path(), LogOptions::default()),
        Err(Error::BadSegment { .. })
    ));
}

#[test]
fn a_segment_of_an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap());
    let path = dir.path().join("seg-00000000000000000000.log");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&99u32.to_le_bytes(), 8).unwrap();
    drop(f);
    match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Err(e @ Error::BadSegment { .. }) => {
            let message = e.to_string();
            assert!(message.contains("version 99"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("an unknown version was accepted: {other:?}"),
    }
}

#[test]
fn invalid_stream_names_never_reach_the_log() {
    for bad in ["", "$system", "white space", "slash/es"] {
        assert!(
            matches!(StreamId::new(bad), Err(Error::InvalidStreamId { .. })),
            "{bad:?} accepted"
        );
    }
}

#[tokio::test]
async fn buffered_appends_are_readable_at_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions::default().with_durability(Durability::Buffered);
    let s = StreamId::new("buffered").unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
        for _ in 0..50 {
            log.append(&s, ExpectedRevision::Any, vec![event(100)])
                .await
                .unwrap();
        }
        assert_eq!(log.head().await.unwrap(), Position(50));
    }
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    assert_eq!(log.head().await.unwrap(), Position(50));
    assert_eq!(log.verify().unwrap().events, 50);
}

#[tokio::test]
async fn a_closed_log_refuses_appends_and_ends_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let s = StreamId::new("s").unwrap();
    log.append(&s, ExpectedRevision::Any, vec![event(1)])
        .await
        .unwrap();
    let mut sub = log.subscribe_all(Position::START).await.unwrap();
    assert_eq!(sub.next().await.unwrap().position, Position(0));
    log.close();
    assert!(matches!(
        log.append(&s, ExpectedRevision::Any, vec![event(1)]).await,
        Err(Error::Closed)
    ));
    assert!(matches!(sub.next().await, Err(Error::Closed)));
    assert_eq!(log.read_all(Position::START, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cancelled_subscription_wait_loses_no_event_and_recorded_at_never_decreases() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap());
    let s = StreamId::new("s").unwrap();
    let mut sub = log.subscribe_all(Position::START).await.unwrap();
    // Cancel a wait with nothing to deliver, many times over.
    for _ in 0..20 {
        let waited = tokio::time::timeout(std::time::Duration::from_millis(1), sub.next()).await;
        assert!(waited.is_err(), "an event out of nowhere: {waited:?}");
    }
    for _ in 0..30 {
        log.append(&s, ExpectedRevision::Any, vec![event(10)])
            .await
            .unwrap();
    }
    let mut last = None;
    for i in 0..30u64 {
        let e = sub.next().await.unwrap();
        assert_eq!(e.position, Position(i), "an event was lost or repeated");
        assert!(Some(e.recorded_at) >= last, "recorded_at went back");
        last = Some(e.recorded_at);
    }
}
