//! Subscriptions run on the backend's own runtime: a subscriber on a
//! single-threaded runtime (like an actix arbiter) that stops reading never
//! blocks appends, the events wait for it in order, and dropping the store
//! ends the subscription with `Closed`.
#![cfg(feature = "eventstoredb")]

use std::time::Duration;

use neonhub_esdb_test_server::TestServer;
use neonhub_events::{Error, EsdbStore, EventData, EventStore, ExpectedRevision};
use neonhub_test_support::{event_data, unique_stream};

fn event(n: u32) -> EventData {
    event_data("sub.v1", n.to_le_bytes().to_vec())
}

#[test]
fn a_subscriber_that_stops_reading_never_blocks_appends() {
    let server = TestServer::start().unwrap();
    // One thread, as an actix arbiter has.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = EsdbStore::connect(&server.url()).unwrap();
        let s = unique_stream("slow");
        let start = store.head().await.unwrap();
        let mut sub = store.subscribe_all(start).await.unwrap();
        // Far more events than the subscription's channel holds, appended
        // while nobody reads it.
        const N: u32 = 1500;
        for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
            let r = tokio::time::timeout(
                Duration::from_secs(20),
                store.append(
                    &s,
                    ExpectedRevision::Any,
                    chunk.iter().map(|&n| event(n)).collect(),
                ),
            )
            .await
            .expect("an append waited for the subscriber");
            r.unwrap();
        }
        for n in 0..N {
            let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .expect("subscription stalled")
                .unwrap();
            assert_eq!(e.stream, s);
            assert_eq!(u32::from_le_bytes(e.payload[..4].try_into().unwrap()), n);
        }
        drop(store);
        match tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a subscription outlived its store")
        {
            Err(Error::Closed) => {}
            other => panic!("after the store was dropped: {other:?}"),
        }
    });
}
