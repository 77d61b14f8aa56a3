//! A read-only handle opens beside the writer (no lock), sees the
//! acknowledged events as of opening, changes nothing on disk (not even a
//! torn tail), and refuses appends.

use std::io::Write;

use neonhub_events::{
    EmbeddedLog, Error, EventData, EventStore, ExpectedRevision, LogOptions, Position, StreamId,
};
use neonhub_test_support::event_data;

fn event(n: u64) -> EventData {
    event_data("test.event.v1", n.to_le_bytes().to_vec())
}

#[tokio::test]
async fn a_read_only_handle_reads_beside_the_writer_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = StreamId::new("s").unwrap();
    let writer = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    for i in 0..10 {
        writer
            .append(&s, ExpectedRevision::Any, vec![event(i), event(i + 100)])
            .await
            .unwrap();
    }

    let reader = EmbeddedLog::open_read_only(dir.path(), LogOptions::default())
        .expect("a read-only open beside the writer");
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.head().await.unwrap(), Position(20));
    assert_eq!(reader.verify().unwrap(), writer.verify().unwrap());
    match reader
        .append(&s, ExpectedRevision::Any, vec![event(0)])
        .await
    {
        Err(e @ Error::ReadOnly { .. }) => assert!(e.to_string().contains("read-only")),
        other => panic!("a read-only handle appended: {other:?}"),
    }

    // The writer goes on; the reader keeps its snapshot.
    writer
        .append(&s, ExpectedRevision::Any, vec![event(50)])
        .await
        .unwrap();
    assert_eq!(
        reader.read_all(Position::START, 100).await.unwrap().len(),
        20
    );
    assert_eq!(writer.head().await.unwrap(), Position(21));

    // An append in progress (here: half a record at the end) is left out and
    // left alone.
    let segment = dir.path().join("seg-00000000000000000000.log");
    let before = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&[200, 0, 0, 0, 1, 2, 3])
        .unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(reader.head().await.unwrap(), Position(21));
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), before + 7);
    drop(reader);
    drop(writer);
    // The writer's next open cuts it.
    let writer = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), before);
    assert_eq!(writer.verify().unwrap().events, 21);
}

#[test]
fn a_read_only_open_of_a_missing_directory_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    assert!(matches!(
        EmbeddedLog::open_read_only(&missing, LogOptions::default()),
        Err(Error::NotALog { dir }) if dir == missing
    ));
    assert!(!missing.exists());
}
