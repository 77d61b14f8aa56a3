//! What the contracts share: unique stream names, numbered events, reads.

use uuid::Uuid;

use crate::ids::{EventId, Position, StreamId};
use crate::store::{Direction, EventData, EventStore, Metadata, ReadFrom, RecordedEvent};

pub(super) fn unique_stream(tag: &str) -> StreamId {
    StreamId::new(format!("contract-{tag}-{}", Uuid::new_v4().simple())).expect("valid name")
}

pub(super) fn event(n: u64) -> EventData {
    EventData {
        id: EventId::new(),
        event_type: "contract.event.v1".to_string(),
        metadata: Metadata::default(),
        payload: n.to_le_bytes().to_vec(),
    }
}

pub(super) fn number(e: &RecordedEvent) -> u64 {
    u64::from_le_bytes(e.payload[..8].try_into().expect("8-byte payload"))
}

pub(super) async fn read_stream_all(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, Direction::Forwards, ReadFrom::Start, usize::MAX)
        .await
        .expect("read stream")
}

/// Every event from `from`, keeping only the streams `keep` accepts.
pub(super) async fn read_all_matching(
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
