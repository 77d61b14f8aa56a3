//! An [`EventStore`] in memory: the same contract as the embedded log (it
//! passes `neonhub_events::contract`), without a disk, for fast unit tests
//! of actors and projections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use neonhub_events::{
    AppendResult, Direction, Error, EventData, EventStore, ExpectedRevision, Position, ReadFrom,
    RecordedEvent, Result, Revision, StreamId, Subscription, SubscriptionSource, Timestamp,
};
use tokio::sync::watch;

/// An in-memory event store. Positions are contiguous (0, 1, 2, ...) as on
/// the embedded log; `recorded_at` never decreases along the global order.
///
/// Clones are handles to the same events, so a test can "close and reopen"
/// it by dropping one handle and using another. Nothing is ever written to
/// disk: the events live as long as a handle does.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    log: RwLock<Log>,
    /// The head after each append, for subscriptions to wait on.
    head: watch::Sender<Position>,
    closed: AtomicBool,
}

#[derive(Default)]
struct Log {
    /// Every event; an event's position is its index.
    events: Vec<RecordedEvent>,
    /// The positions of each stream's events, in revision order.
    streams: HashMap<StreamId, Vec<usize>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops accepting appends and ends subscriptions with
    /// [`Error::Closed`], for every handle. Reads keep working. Idempotent.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Wake the subscriptions waiting for an append, so they see it.
        self.shared.head.send_modify(|_| {});
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.shared.log.read().expect("log lock");
        f.debug_struct("MemoryStore")
            .field("events", &log.events.len())
            .field("streams", &log.streams.len())
            .finish()
    }
}

impl Log {
    fn read_all(&self, from: Position, limit: usize) -> Vec<RecordedEvent> {
        let start = usize::try_from(from.0)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        self.events[start..].iter().take(limit).cloned().collect()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::InvalidInput(
                "an append needs at least one event".to_string(),
            ));
        }
        if let Some(bad) = events
            .iter()
            .find(|e| e.event_type.is_empty() || e.event_type.len() > usize::from(u16::MAX))
        {
            return Err(Error::InvalidInput(format!(
                "event type names are 1 to 65535 bytes, got {}",
                bad.event_type.len()
            )));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let result = {
            let mut log = self.shared.log.write().expect("log lock");
            let Log {
                events: all,
                streams,
            } = &mut *log;
            let actual = streams
                .get(stream)
                .map(|positions| Revision(positions.len() as u64 - 1));
            if !expected.accepts(actual) {
                return Err(Error::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual,
                });
            }
            let positions = streams.entry(stream.clone()).or_default();
            let first_position = Position(all.len() as u64);
            let recorded_at = Timestamp::now().max(
                all.last()
                    .map_or(Timestamp(0), |last: &RecordedEvent| last.recorded_at),
            );
            for event in events {
                let revision = Revision(positions.len() as u64);
                positions.push(all.len());
                all.push(RecordedEvent {
                    id: event.id,
                    stream: stream.clone(),
                    revision,
                    position: Position(all.len() as u64),
                    recorded_at,
                    event_type: event.event_type,
                    metadata: event.metadata,
                    payload: event.payload,
                });
            }
            AppendResult {
                next_expected: Revision(positions.len() as u64 - 1),
                first_position,
                last_position: Position(all.len() as u64 - 1),
            }
        };
        self.shared.head.send_replace(result.last_position.next());
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let log = self.shared.log.read().expect("log lock");
        let Some(positions) = log.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let n = positions.len();
        let revision = |r: Revision| usize::try_from(r.0).unwrap_or(usize::MAX);
        let chosen: Box<dyn Iterator<Item = &usize>> = match direction {
            Direction::Forwards => {
                let start = match from {
                    ReadFrom::Start => 0,
                    ReadFrom::End => n,
                    ReadFrom::Revision(r) => revision(r).min(n),
                };
                Box::new(positions[start..].iter())
            }
            Direction::Backwards => {
                let end = match from {
                    ReadFrom::Start => 1.min(n),
                    ReadFrom::End => n,
                    ReadFrom::Revision(r) => revision(r).saturating_add(1).min(n),
                };
                Box::new(positions[..end].iter().rev())
            }
        };
        Ok(chosen.take(limit).map(|&p| log.events[p].clone()).collect())
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        Ok(self
            .shared
            .log
            .read()
            .expect("log lock")
            .read_all(from, limit))
    }

    async fn subscribe_all(&self, from: Position) -> Result<Subscription> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(Subscription::new(MemorySubscription {
            store: self.clone(),
            next: from,
            head: self.shared.head.subscribe(),
        }))
    }

    async fn head(&self) -> Result<Position> {
        let log = self.shared.log.read().expect("log lock");
        Ok(Position(log.events.len() as u64))
    }
}

/// Catch-up then live: hands over the stored event at its position, or
/// waits for the head to move past it. It holds no event of its own.
struct MemorySubscription {
    store: MemoryStore,
    next: Position,
    head: watch::Receiver<Position>,
}

#[async_trait]
impl SubscriptionSource for MemorySubscription {
    async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            // Mark the head seen before looking, so an append made after the
            // look wakes the wait below.
            self.head.borrow_and_update();
            if self.store.is_closed() {
                return Err(Error::Closed);
            }
            let stored = {
                let log = self.store.shared.log.read().expect("log lock");
                usize::try_from(self.next.0)
                    .ok()
                    .and_then(|i| log.events.get(i).cloned())
            };
            if let Some(event) = stored {
                self.next = event.position.next();
                return Ok(event);
            }
            if self.head.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }
}
