//! Contracts under concurrent appends: revisions taken once, one creator
//! winning, batches kept whole.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use super::Backend;
use super::support::{event, number, read_all_matching, read_stream_all, unique_stream};
use crate::error::Error;
use crate::ids::{Revision, StreamId};
use crate::store::{Direction, ExpectedRevision, ReadFrom};

/// Many tasks append to one stream with `Exact` after reading it; conflicts
/// are reported, retried, and every revision is taken exactly once.
pub async fn concurrent_appenders_never_share_a_revision(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("race");
    store
        .append(&s, ExpectedRevision::NoStream, vec![event(u64::MAX)])
        .await
        .unwrap();
    const TASKS: u64 = 8;
    const EACH: u64 = 10;
    let conflicts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let s = s.clone();
            let conflicts = conflicts.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    loop {
                        let last = store
                            .read_stream(&s, Direction::Backwards, ReadFrom::End, 1)
                            .await
                            .unwrap()[0]
                            .revision;
                        match store
                            .append(&s, ExpectedRevision::Exact(last), vec![event(t * 1000 + i)])
                            .await
                        {
                            Ok(r) => {
                                assert_eq!(r.next_expected, last.next());
                                break;
                            }
                            Err(Error::WrongExpectedVersion { actual, .. }) => {
                                assert!(actual > Some(last), "conflict without progress");
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let events = read_stream_all(&*store, &s).await;
    assert_eq!(events.len() as u64, 1 + TASKS * EACH);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.revision, Revision(i as u64));
    }
    let numbers: HashSet<u64> = events.iter().skip(1).map(number).collect();
    assert_eq!(
        numbers.len() as u64,
        TASKS * EACH,
        "an append was lost or doubled"
    );
    for t in 0..TASKS {
        let mine: Vec<u64> = events
            .iter()
            .skip(1)
            .map(number)
            .filter(|n| n / 1000 == t)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "task {t} reordered");
    }
    backend.close(store).await;
}

/// Of many tasks creating the same stream at `NoStream`, exactly one wins.
pub async fn only_one_of_racing_creators_wins(backend: &impl Backend) {
    let store = backend.open().await;
    let s = unique_stream("create");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &s,
                        ExpectedRevision::NoStream,
                        vec![event(i), event(i + 100)],
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners.push(()),
            Err(Error::WrongExpectedVersion { actual, .. }) => {
                assert_eq!(actual, Some(Revision(1)))
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let events = read_stream_all(&*store, &s).await;
    assert_eq!(events.len(), 2);
    assert_eq!(number(&events[1]), number(&events[0]) + 100);
    backend.close(store).await;
}

/// Batches appended concurrently to many streams come out whole: each
/// batch's events are adjacent in the global order, in batch order.
pub async fn batches_are_atomic_and_contiguous(backend: &impl Backend) {
    let store = backend.open().await;
    let start = store.head().await.unwrap();
    let prefix = format!("contract-batch-{}", Uuid::new_v4().simple());
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let store = store.clone();
            let s = StreamId::new(format!("{prefix}-{t}")).unwrap();
            tokio::spawn(async move {
                let mut expected = ExpectedRevision::NoStream;
                for b in 0..5u64 {
                    let batch = (0..7).map(|i| event(t * 10_000 + b * 100 + i)).collect();
                    let r = store.append(&s, expected, batch).await.unwrap();
                    assert_eq!(r.next_expected, Revision(b * 7 + 6));
                    expected = ExpectedRevision::Exact(r.next_expected);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = read_all_matching(&*store, start, |s| s.as_str().starts_with(&prefix)).await;
    assert_eq!(all.len(), 16 * 5 * 7);
    for chunk in all.chunks(7) {
        let first = number(&chunk[0]);
        assert_eq!(first % 100, 0, "a batch does not start at its first event");
        for (i, e) in chunk.iter().enumerate() {
            assert_eq!(number(e), first + i as u64, "batch interleaved or torn");
            assert_eq!(e.stream, chunk[0].stream);
        }
    }
    backend.close(store).await;
}
