//! A client whose first connection fails stays closed for good; the backend
//! recreates it with backoff, so once a node is up (again) requests go
//! through — after a node that was never there, and after a node that went
//! away and came back on the same address.
#![cfg(feature = "eventstoredb")]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use neonhub_esdb_test_server::{DEFAULT_MAX_APPEND_SIZE, TestServer};
use neonhub_events::{
    Direction, Error, EsdbStore, EventData, EventStore, ExpectedRevision, ReadFrom, StreamId,
};
use neonhub_test_support::{event_data, unique_stream};

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn event() -> EventData {
    event_data("reconnect.v1", vec![1])
}

/// Appends until one goes through, failing the test after `within`.
async fn append_eventually(store: &EsdbStore, stream: &StreamId, within: Duration) {
    let deadline = Instant::now() + within;
    let e = event();
    loop {
        // The same event each time: a retry that did land is idempotent.
        match store
            .append(stream, ExpectedRevision::Any, vec![e.clone()])
            .await
        {
            Ok(_) => return,
            Err(Error::Backend {
                retryable: true, ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("append did not go through: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_once_the_node_is_up_and_again_after_it_restarts() {
    let addr = free_addr();
    let store = EsdbStore::connect(&format!("esdb://{addr}?tls=false")).expect("connect");
    let stream = unique_stream("reconnect");

    // Nothing listens yet: a retryable failure, not a hang or a panic.
    match store
        .append(&stream, ExpectedRevision::Any, vec![event()])
        .await
    {
        Err(Error::Backend {
            retryable: true, ..
        }) => {}
        other => panic!("append without a node: {other:?}"),
    }

    let server = TestServer::start_with(addr, DEFAULT_MAX_APPEND_SIZE).expect("start");
    append_eventually(&store, &stream, Duration::from_secs(30)).await;
    assert_eq!(
        store
            .read_stream(&stream, Direction::Forwards, ReadFrom::Start, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // The node goes away (connections cut) and comes back, empty, on the
    // same address.
    drop(server);
    let _server = loop {
        match TestServer::start_with(addr, DEFAULT_MAX_APPEND_SIZE) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    append_eventually(&store, &stream, Duration::from_secs(30)).await;
    let events = store
        .read_stream(&stream, Direction::Forwards, ReadFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        1,
        "the restarted node holds only the new event"
    );
}
