//! A store to test against (a durable embedded log in a temp dir, or the
//! in-memory store), and reading what a run left in it.

use std::sync::Arc;

use neonhub_events::{
    Codec, Direction, EmbeddedLog, EventData, EventId, LogOptions, Metadata, Position, ReadFrom,
    RecordedEvent, RunEvent, RunId, SharedStore, StreamId,
};
use tempfile::TempDir;

use crate::MemoryStore;

/// A fresh durable embedded log in a temp dir (keep the dir alive).
pub fn store() -> (TempDir, SharedStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).expect("open the log");
    (dir, Arc::new(log))
}

/// A fresh, empty in-memory store: for tests that do not need the disk.
pub fn memory_store() -> SharedStore {
    Arc::new(MemoryStore::new())
}

/// The recorded events of one run, in stream order.
pub async fn recorded(store: &SharedStore, run_id: RunId) -> Vec<RecordedEvent> {
    store
        .read_stream(
            &run_id.stream(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await
        .expect("read the run stream")
}

/// The decoded events of one run, in stream order.
pub async fn events(store: &SharedStore, run_id: RunId) -> Vec<RunEvent> {
    let codec = Codec::new();
    recorded(store, run_id)
        .await
        .iter()
        .map(|r| codec.decode(r).expect("decode"))
        .collect()
}

/// Every event in the store, in global order.
pub async fn all(store: &SharedStore) -> Vec<RecordedEvent> {
    store
        .read_all(Position::START, usize::MAX)
        .await
        .expect("read all")
}

/// The child runs of `parent` (their first attempts), in log order.
pub async fn child_runs(store: &SharedStore, parent: RunId) -> Vec<RunId> {
    let codec = Codec::new();
    let mut children = Vec::new();
    for r in all(store).await {
        if let Ok(RunEvent::Started(s)) = codec.decode(&r)
            && s.parent_run_id == Some(parent)
            && s.attempt == 1
        {
            children.push(s.run_id);
        }
    }
    children
}

/// The type names of a run's events, in order, with `will_retry` spelled
/// out for failures: a compact picture of the stream to assert on.
pub fn shape(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            RunEvent::Started(s) => format!("started#{}", s.attempt),
            RunEvent::Succeeded(s) => format!("succeeded#{}", s.attempt),
            RunEvent::Failed(f) if f.will_retry => {
                format!("failed#{}({}, will retry)", f.attempt, f.error.kind)
            }
            RunEvent::Failed(f) => format!("failed#{}({})", f.attempt, f.error.kind),
            RunEvent::StepResolved(r) => format!("resolved({})", r.outcome),
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// Asserts the revisions of a stream are 0, 1, 2, ... (every append was at
/// the exact next revision) and that positions grow.
pub fn assert_contiguous(recorded: &[RecordedEvent]) {
    for (i, r) in recorded.iter().enumerate() {
        assert_eq!(r.revision.0, i as u64, "revision of event {i}");
    }
    for pair in recorded.windows(2) {
        assert!(pair[0].position < pair[1].position);
    }
}

/// An event to append: a fresh id, `event_type`, no metadata, `payload`.
pub fn event_data(event_type: &str, payload: Vec<u8>) -> EventData {
    EventData {
        id: EventId::new(),
        event_type: event_type.to_owned(),
        metadata: Metadata::default(),
        payload,
    }
}

/// A stream no other test uses: `<prefix>-<random hex>`.
pub fn unique_stream(prefix: &str) -> StreamId {
    StreamId::new(format!("{prefix}-{}", uuid::Uuid::new_v4().simple())).expect("a valid name")
}
