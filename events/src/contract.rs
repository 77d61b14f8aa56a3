//! The contract every [`EventStore`] backend must pass, written once.
//!
//! A backend's test file implements [`Backend`] and expands
//! [`contract_suite!`](crate::contract_suite) to get one `#[tokio::test]` per
//! contract. The tests use fresh, unique stream names and positions relative
//! to the head at their start, so they also run against a shared server that
//! holds other data.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::Error;
use crate::ids::{EventId, Position, Revision, StreamId};
use crate::store::{
    Direction, EventData, EventStore, ExpectedRevision, Metadata, ReadFrom, RecordedEvent,
    SharedStore,
};

/// How the suite gets at a backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the store (the same data every time it is called).
    async fn open(&self) -> SharedStore;
    /// Closes a store returned by [`Backend::open`] so it can be opened again.
    async fn close(&self, store: SharedStore);
}

/// Expands to one `#[tokio::test]` per contract for the backend that
/// `$backend` (an expression, evaluated once per test) builds.
#[macro_export]
macro_rules! contract_suite {
    ($backend:expr) => {
        $crate::contract_suite!(@tests $backend;
            appends_and_reads_a_stream_both_ways,
            enforces_expected_revisions_and_writes_nothing_on_conflict,
            concurrent_appenders_never_share_a_revision,
            only_one_of_racing_creators_wins,
            batches_are_atomic_and_contiguous,
            reads_all_in_global_order_with_paging,
            subscription_hands_over_from_catch_up_to_live_without_gaps,
            subscription_starts_at_a_middle_position,
            reopening_keeps_every_event_and_revision,
            rejects_an_empty_batch_and_keeps_ids_and_metadata,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                $crate::contract::$name(&backend).await;
            }
        )*
    };
}

fn unique_stream(tag: &str) -> StreamId {
    StreamId::new(format!("contract-{tag}-{}", Uuid::new_v4().simple())).expect("valid name")
}

fn event(n: u64) -> EventData {
    EventData {
        id: EventId::new(),
        event_type: "contract.event.v1".to_string(),
        metadata: Metadata::default(),
        payload: n.to_le_bytes().to_vec(),
    }
}

fn number(e: &RecordedEvent) -> u64 {
    u64::from_le_bytes(e.payload[..8].try_into().expect("8-byte payload"))
}

async fn read_stream_all(store: &dyn EventStore, stream: &StreamId) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, Direction::Forwards, ReadFrom::Start, usize::MAX)
        .await
        .expect("read stream")
}

/// Every event from `from`, keeping only the streams `keep` accepts.
async fn read_all_matching(
    store: &dyn EventStore,
    from: Position,
    keep: impl Fn(&StreamId) -> bool,
) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let batch = store.read_all(at, 1000).await.expect("read all");
        let Some(last) = batch.last() else { break };
        at = last.position.next();
        out.extend(batch.into_iter().filter(|e| keep(&e.stream)));
    }
    out
}

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

/// After closing and reopening, every event reads back the same and the
/// next append continues the stream's revisions and the global order.
pub async fn reopening_keeps_every_event_and_revision(backend: &impl Backend) {
    let store = backend.open().await;
    let start = store.head().await.unwrap();
    let streams: Vec<StreamId> = (0..5).map(|i| unique_stream(&format!("re{i}"))).collect();
    for round in 0..4u64 {
        for (i, s) in streams.iter().enumerate() {
            store
                .append(s, ExpectedRevision::Any, vec![event(round * 10 + i as u64)])
                .await
                .unwrap();
        }
    }
    let keep = |s: &StreamId| streams.contains(s);
    let before = read_all_matching(&*store, start, keep).await;
    backend.close(store).await;

    let store = backend.open().await;
    let after = read_all_matching(&*store, start, keep).await;
    assert_eq!(before, after, "reopen changed the log");
    let r = store
        .append(
            &streams[0],
            ExpectedRevision::Exact(Revision(3)),
            vec![event(100)],
        )
        .await
        .unwrap();
    assert_eq!(r.next_expected, Revision(4));
    assert!(r.first_position > before.last().unwrap().position);
    let per_stream: HashMap<&StreamId, usize> = streams
        .iter()
        .map(|s| (s, 4 + usize::from(*s == streams[0])))
        .collect();
    for (s, n) in per_stream {
        assert_eq!(read_stream_all(&*store, s).await.len(), n);
    }
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
