//! A follower's "not leader" answer and a missed deadline come back as
//! retryable backend errors that say what happened, and requests go through
//! again once the node leads or answers in time.
#![cfg(feature = "eventstoredb")]

use std::time::Duration;

use neonhub_esdb_test_server::TestServer;
use neonhub_events::{Error, EsdbStore, EventData, EventStore, ExpectedRevision, StreamId};
use neonhub_test_support::{event_data, unique_stream};

fn event() -> EventData {
    event_data("errors.v1", vec![1])
}

fn stream() -> StreamId {
    unique_stream("errors")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_is_retryable_and_names_the_leader() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&server.url()).unwrap();
    let s = stream();
    store
        .append(&s, ExpectedRevision::NoStream, vec![event()])
        .await
        .unwrap();
    // The "leader" is this same node, so the client's reconnection to it
    // stays on this machine.
    let port = server.addr().port();
    server.set_not_leader(Some(("127.0.0.1".into(), port)));
    match store.append(&s, ExpectedRevision::Any, vec![event()]).await {
        Err(Error::Backend {
            message,
            retryable: true,
        }) => {
            assert!(message.contains("not the leader"), "{message}");
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        }
        other => panic!("append on a follower: {other:?}"),
    }
    server.set_not_leader(None);
    let r = store
        .append(&s, ExpectedRevision::Any, vec![event()])
        .await
        .expect("append once the node leads");
    assert_eq!(r.next_expected.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_deadline_is_retryable_and_a_retry_with_the_same_ids_is_idempotent() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&format!("{}&defaultDeadline=1000", server.url())).unwrap();
    let s = stream();
    store
        .append(&s, ExpectedRevision::NoStream, vec![event()])
        .await
        .unwrap();
    server.set_append_delay(Duration::from_secs(5));
    let late = event();
    match store
        .append(
            &s,
            ExpectedRevision::Exact(neonhub_events::Revision(0)),
            vec![late.clone()],
        )
        .await
    {
        Err(Error::Backend {
            message,
            retryable: true,
        }) => assert!(message.contains("deadline"), "{message}"),
        other => panic!("append past its deadline: {other:?}"),
    }
    server.set_append_delay(Duration::ZERO);
    // Whether or not the late append landed, retrying it is safe.
    let r = store
        .append(
            &s,
            ExpectedRevision::Exact(neonhub_events::Revision(0)),
            vec![late],
        )
        .await
        .expect("retry");
    assert_eq!(r.next_expected.0, 1);
}
