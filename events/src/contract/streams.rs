//! Contracts on one stream: reads both ways, expected revisions, and
//! events coming back exactly as appended.

use uuid::Uuid;

use super::Backend;
use super::support::{event, number, read_stream_all, unique_stream};
use crate::error::Error;
use crate::ids::{EventId, Revision};
use crate::store::{Direction, EventData, ExpectedRevision, Metadata, ReadFrom};

/// Appends then reads one stream forwards and backwards, from either end and
/// from a revision, with limits.
pub async fn appends_and_reads_a_stream_both_ways(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("rw");
    let first = store
        .append(&s, ExpectedRevision::NoStream, (0..3).map(event).collect())
        .await
        .expect("first append");
    assert_eq!(first.next_expected, Revision(2));
    assert!(first.first_position < first.last_position);
    let second = store
        .append(
            &s,
            ExpectedRevision::Exact(Revision(2)),
            (3..5).map(event).collect(),
        )
        .await
        .expect("second append");
    assert_eq!(second.next_expected, Revision(4));
    assert!(second.first_position > first.last_position);

    let forwards = read_stream_all(&*store, &s).await;
    assert_eq!(
        forwards.iter().map(number).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        forwards.iter().map(|e| e.revision.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(forwards.iter().all(|e| e.stream == s));
    assert!(forwards.windows(2).all(|w| w[0].position < w[1].position));

    let backwards = store
        .read_stream(&s, Direction::Backwards, ReadFrom::End, 10)
        .await
        .unwrap();
    assert_eq!(
        backwards.iter().map(number).collect::<Vec<_>>(),
        [4, 3, 2, 1, 0]
    );
    let from_two = store
        .read_stream(&s, Direction::Forwards, ReadFrom::Revision(Revision(2)), 2)
        .await
        .unwrap();
    assert_eq!(from_two.iter().map(number).collect::<Vec<_>>(), [2, 3]);
    let back_from_two = store
        .read_stream(
            &s,
            Direction::Backwards,
            ReadFrom::Revision(Revision(2)),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        back_from_two.iter().map(number).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    let last_one = store
        .read_stream(&s, Direction::Backwards, ReadFrom::End, 1)
        .await
        .unwrap();
    assert_eq!(last_one[0].revision, Revision(4));
    let past_end = store
        .read_stream(&s, Direction::Forwards, ReadFrom::Revision(Revision(9)), 10)
        .await
        .unwrap();
    assert!(past_end.is_empty());
    let absent = read_stream_all(&*store, &unique_stream("absent")).await;
    assert!(absent.is_empty());
    backend.close(store).await;
}

/// `NoStream`, `StreamExists`, `Exact` and `Any` are enforced, a conflict
/// reports the actual revision, and a rejected append writes nothing.
pub async fn enforces_expected_revisions_and_writes_nothing_on_conflict(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("expect");
    match store
        .append(&s, ExpectedRevision::StreamExists, vec![event(0)])
        .await
    {
        Err(Error::WrongExpectedVersion {
            actual,
            expected,
            stream,
        }) => {
            assert_eq!(actual, None);
            assert_eq!(expected, ExpectedRevision::StreamExists);
            assert_eq!(stream, s);
        }
        other => panic!("StreamExists on an absent stream: {other:?}"),
    }
    match store
        .append(&s, ExpectedRevision::Exact(Revision(0)), vec![event(0)])
        .await
    {
        Err(Error::WrongExpectedVersion { actual: None, .. }) => {}
        other => panic!("Exact(0) on an absent stream: {other:?}"),
    }
    store
        .append(&s, ExpectedRevision::NoStream, vec![event(0), event(1)])
        .await
        .unwrap();
    for (expected, name) in [
        (ExpectedRevision::NoStream, "NoStream"),
        (ExpectedRevision::Exact(Revision(0)), "Exact(0)"),
        (ExpectedRevision::Exact(Revision(7)), "Exact(7)"),
    ] {
        match store.append(&s, expected, vec![event(99)]).await {
            Err(Error::WrongExpectedVersion { actual, .. }) => {
                assert_eq!(actual, Some(Revision(1)), "{name}")
            }
            other => panic!("{name} on a stream at revision 1: {other:?}"),
        }
    }
    assert_eq!(
        read_stream_all(&*store, &s).await.len(),
        2,
        "a rejected append wrote"
    );
    let r = store
        .append(&s, ExpectedRevision::StreamExists, vec![event(2)])
        .await
        .unwrap();
    assert_eq!(r.next_expected, Revision(2));
    let r = store
        .append(&s, ExpectedRevision::Any, vec![event(3)])
        .await
        .unwrap();
    assert_eq!(r.next_expected, Revision(3));
    let any_new = unique_stream("any");
    let r = store
        .append(&any_new, ExpectedRevision::Any, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(r.next_expected, Revision(0));
    assert_eq!(
        read_stream_all(&*store, &s)
            .await
            .iter()
            .map(number)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    backend.close(store).await;
}

/// An empty batch is rejected (and writes nothing); event ids, types and
/// metadata come back exactly as appended.
pub async fn rejects_an_empty_batch_and_keeps_ids_and_metadata(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("meta");
    match store.append(&s, ExpectedRevision::Any, vec![]).await {
        Err(e) => assert!(e.is_client_error(), "empty batch: {e}"),
        Ok(r) => panic!("an empty batch was accepted: {r:?}"),
    }
    assert!(read_stream_all(&*store, &s).await.is_empty());
    let sent = EventData {
        id: EventId::new(),
        event_type: "contract.meta.v1".to_string(),
        metadata: Metadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: Some(Uuid::now_v7()),
        },
        payload: vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0],
    };
    store
        .append(&s, ExpectedRevision::NoStream, vec![sent.clone()])
        .await
        .unwrap();
    let got = read_stream_all(&*store, &s).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, sent.id);
    assert_eq!(got[0].event_type, sent.event_type);
    assert_eq!(got[0].metadata, sent.metadata);
    assert_eq!(got[0].payload, sent.payload);
    assert_eq!(got[0].revision, Revision(0));
    backend.close(store).await;
}
