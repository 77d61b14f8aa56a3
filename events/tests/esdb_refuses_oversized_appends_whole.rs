//! Appends over EventStoreDB's 1 MiB request limit are refused with a clear
//! client error and never half-written: checked by the backend before
//! sending, and by the server when its limit is lower than the backend's.
#![cfg(feature = "eventstoredb")]

use neonhub_esdb_test_server::TestServer;
use neonhub_events::{
    Direction, Error, EsdbOptions, EsdbStore, EventData, EventStore, ExpectedRevision, ReadFrom,
    StreamId,
};
use neonhub_test_support::{event_data, unique_stream};

fn event(bytes: usize) -> EventData {
    event_data("big.v1", vec![0xab; bytes])
}

fn stream() -> StreamId {
    unique_stream("big")
}

async fn len(store: &EsdbStore, s: &StreamId) -> usize {
    store
        .read_stream(s, Direction::Forwards, ReadFrom::Start, usize::MAX)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_or_batch_over_the_limit_is_refused_before_sending() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&server.url()).unwrap();
    let s = stream();
    let before = server.event_count();

    match store
        .append(&s, ExpectedRevision::Any, vec![event(1536 * 1024)])
        .await
    {
        Err(e @ Error::EventTooLarge { max, .. }) => {
            assert_eq!(max, 1024 * 1024);
            assert!(e.is_client_error());
        }
        other => panic!("a 1.5 MiB event: {other:?}"),
    }
    // Three events that fit one by one but not together.
    let batch = vec![event(400 * 1024), event(400 * 1024), event(400 * 1024)];
    match store.append(&s, ExpectedRevision::Any, batch).await {
        Err(e @ Error::InvalidInput(_)) => {
            assert!(e.is_client_error());
            assert!(e.to_string().contains("nothing was written"), "{e}");
        }
        other => panic!("a 1.2 MiB batch: {other:?}"),
    }
    assert_eq!(len(&store, &s).await, 0);
    assert_eq!(server.event_count(), before);

    // Just under the limit goes through, whole.
    let fits = vec![event(500 * 1024), event(500 * 1024)];
    let r = store
        .append(&s, ExpectedRevision::NoStream, fits)
        .await
        .unwrap();
    assert!(r.first_position < r.last_position);
    assert_eq!(len(&store, &s).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_lower_limit_refuses_the_whole_batch() {
    let server = TestServer::start_with(([127, 0, 0, 1], 0).into(), 64 * 1024).unwrap();
    let store = EsdbStore::connect_with(
        &server.url(),
        EsdbOptions::default().with_max_append_size(1024 * 1024),
    )
    .unwrap();
    let s = stream();
    let before = server.event_count();
    let batch = vec![event(40 * 1024), event(40 * 1024)];
    match store.append(&s, ExpectedRevision::Any, batch).await {
        Err(e @ Error::InvalidInput(_)) => {
            assert!(e.to_string().contains("Maximum Append Size"), "{e}");
        }
        other => panic!("over the server's limit: {other:?}"),
    }
    assert_eq!(len(&store, &s).await, 0, "half a batch was written");
    assert_eq!(server.event_count(), before);
}
