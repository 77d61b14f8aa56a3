//! When the server drops a subscription (a node stepping down or
//! restarting), the backend resubscribes from the last event it handed over:
//! the subscriber sees every event once, in order, with no gap.
#![cfg(feature = "eventstoredb")]

use std::time::Duration;

use neonhub_esdb_test_server::TestServer;
use neonhub_events::{EsdbStore, EventData, EventStore, ExpectedRevision, Subscription};
use neonhub_test_support::{event_data, unique_stream};

fn event(n: u32) -> EventData {
    event_data("resume.v1", n.to_le_bytes().to_vec())
}

async fn next_number(sub: &mut Subscription) -> u32 {
    let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("subscription stalled")
        .expect("subscription failed");
    u32::from_le_bytes(e.payload[..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_resumes_without_gaps_or_repeats() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&server.url()).unwrap();
    let s = unique_stream("resume");
    let start = store.head().await.unwrap();
    for n in 0..100 {
        store
            .append(&s, ExpectedRevision::Any, vec![event(n)])
            .await
            .unwrap();
    }
    let mut sub = store.subscribe_all(start).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(next_number(&mut sub).await);
    }
    // Caught up: the server drops it, three times, with appends in between.
    for round in 0..3u32 {
        server.drop_subscriptions();
        for n in 0..50 {
            store
                .append(&s, ExpectedRevision::Any, vec![event(100 + round * 50 + n)])
                .await
                .unwrap();
        }
        for _ in 0..50 {
            seen.push(next_number(&mut sub).await);
        }
    }
    assert_eq!(seen, (0..250).collect::<Vec<_>>());
    // Nothing more, and nothing repeated, arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );
}
