//! Contracts on `$all`: the global order, paging, and subscriptions from
//! catch-up to live.

use std::time::Duration;

use super::Backend;
use super::support::{event, number, read_all_matching, unique_stream};
use crate::ids::StreamId;
use crate::store::ExpectedRevision;

/// `read_all` returns events in strictly increasing position, includes the
/// event at `from`, and paging gives the same as one read.
pub async fn reads_all_in_global_order_with_paging(backend: &impl Backend) {
    let store = backend.open().await;
    let start = store.head().await.unwrap();
    let a = unique_stream("all-a");
    let b = unique_stream("all-b");
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let s = if i % 3 == 0 { &a } else { &b };
        store
            .append(s, ExpectedRevision::Any, vec![event(i)])
            .await
            .unwrap();
        expected.push(i);
    }
    let keep = |s: &StreamId| *s == a || *s == b;
    let all = read_all_matching(&*store, start, keep).await;
    assert_eq!(all.iter().map(number).collect::<Vec<_>>(), expected);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    // `from` is inclusive.
    let from_tenth = store.read_all(all[10].position, 1).await.unwrap();
    assert_eq!(from_tenth[0].id, all[10].id);
    // Small pages agree with the whole.
    let mut paged = Vec::new();
    let mut at = start;
    loop {
        let page = store.read_all(at, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 3);
        at = last.position.next();
        paged.extend(page.into_iter().filter(|e| keep(&e.stream)));
    }
    assert_eq!(
        paged.iter().map(|e| e.id).collect::<Vec<_>>(),
        all.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let head = store.head().await.unwrap();
    assert!(head > all.last().unwrap().position);
    assert!(store.read_all(head, 10).await.unwrap().is_empty());
    backend.close(store).await;
}

/// A subscription from before existing events delivers them, then events
/// appended while it runs, with no gap and no duplicate.
pub async fn subscription_hands_over_from_catch_up_to_live_without_gaps(backend: &impl Backend) {
    let store = backend.open().await;
    let start = store.head().await.unwrap();
    let s = unique_stream("sub");
    for i in 0..100u64 {
        store
            .append(&s, ExpectedRevision::Any, vec![event(i)])
            .await
            .unwrap();
    }
    let mut sub = store.subscribe_all(start).await.unwrap();
    let writer = {
        let store = store.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for i in 100..300u64 {
                store
                    .append(&s, ExpectedRevision::Any, vec![event(i)])
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut seen = Vec::new();
    let mut last_position = None;
    while seen.len() < 300 {
        let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("subscription stalled")
            .expect("subscription failed");
        assert!(Some(e.position) > last_position, "positions went back");
        last_position = Some(e.position);
        if e.stream == s {
            seen.push(number(&e));
        }
    }
    writer.await.unwrap();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    backend.close(store).await;
}

/// A subscription from the position of an event starts with that event.
pub async fn subscription_starts_at_a_middle_position(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("mid");
    let mut positions = Vec::new();
    for i in 0..10u64 {
        let r = store
            .append(&s, ExpectedRevision::Any, vec![event(i)])
            .await
            .unwrap();
        positions.push(r.first_position);
    }
    let mut sub = store.subscribe_all(positions[6]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("subscription stalled")
            .unwrap();
        if e.stream == s {
            got.push(number(&e));
        }
    }
    assert_eq!(got, [6, 7, 8, 9]);
    backend.close(store).await;
}
