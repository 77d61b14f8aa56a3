//! The `EventStore` trait every backend implements, and the envelope of a
//! recorded event.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;
use crate::ids::{EventId, Position, Revision, StreamId, Timestamp};

/// What an append expects the stream to be at; the append fails with
/// [`crate::Error::WrongExpectedVersion`] (and writes nothing) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist yet (its first event is being written).
    NoStream,
    /// The stream must exist, at any revision.
    StreamExists,
    /// The stream's last event must be at exactly this revision.
    Exact(Revision),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `actual` (`None`: absent)
    /// satisfies this expectation.
    pub fn accepts(self, actual: Option<Revision>) -> bool {
        match self {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => actual.is_none(),
            ExpectedRevision::StreamExists => actual.is_some(),
            ExpectedRevision::Exact(r) => actual == Some(r),
        }
    }
}

/// Who caused an event: the root request (correlation) and the event or run
/// that led to it (causation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Metadata {
    /// The root request every event of one piece of work shares.
    pub correlation_id: Option<Uuid>,
    /// The run or event that directly caused this one.
    pub causation_id: Option<Uuid>,
}

/// An event to append: its id, type name, metadata and payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventData {
    /// The event's id; appending the same id again is how backends that
    /// support it make a retried append idempotent.
    pub id: EventId,
    /// The versioned type name, e.g. `run.started.v1` (see [`crate::event_types`]).
    pub event_type: String,
    /// Correlation and causation.
    pub metadata: Metadata,
    /// The encoded payload (MessagePack for neonhub's own events).
    pub payload: Vec<u8>,
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The event's id.
    pub id: EventId,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its index within the stream.
    pub revision: Revision,
    /// Its place in the global order.
    pub position: Position,
    /// When the store wrote it. Never decreases along the global order
    /// (the embedded log holds it back if the clock steps back), so "the log
    /// as of time t" is a prefix of the log.
    pub recorded_at: Timestamp,
    /// The versioned type name.
    pub event_type: String,
    /// Correlation and causation.
    pub metadata: Metadata,
    /// The encoded payload.
    pub payload: Vec<u8>,
}

/// The outcome of a successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The revision of the last event written: pass it as
    /// `ExpectedRevision::Exact` to append the next event.
    pub next_expected: Revision,
    /// The global position of the first event written.
    pub first_position: Position,
    /// The global position of the last event written.
    pub last_position: Position,
}

/// Which way to read a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    Forwards,
    /// Newest first.
    Backwards,
}

/// Where to start reading a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadFrom {
    /// The first event (forwards) — reading backwards from `Start` yields at
    /// most the first event.
    Start,
    /// The last event (backwards) — reading forwards from `End` yields nothing.
    End,
    /// This revision, included.
    Revision(Revision),
}

/// The shared handle most code passes around.
pub type SharedStore = Arc<dyn EventStore>;

/// An append-only store of streams of events with a global order.
///
/// Implemented by the embedded log ([`crate::EmbeddedLog`]) and by the
/// EventStoreDB backend; [`crate::contract`] holds the tests every
/// implementation must pass.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream`, all or nothing, if the stream is at
    /// `expected`. Returns once the events are durable (unless the store was
    /// opened in a buffered mode).
    ///
    /// # Errors
    /// [`crate::Error::WrongExpectedVersion`] on a conflict,
    /// [`crate::Error::EventTooLarge`] or [`crate::Error::InvalidInput`] (an
    /// empty batch) for bad input — in each case nothing was written;
    /// [`crate::Error::Closed`] once closed; I/O errors.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult>;

    /// Reads up to `limit` events of one stream, starting at `from`, in
    /// `direction`. A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Reads up to `limit` events of the whole store in global order, starting
    /// at the first event whose position is at least `from`.
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Follows the whole store from `from` (included): first every stored
    /// event, then each new one as it is acknowledged, never skipping or
    /// repeating one. A slow subscriber only falls behind; it never makes the
    /// store buffer without bound.
    async fn subscribe_all(&self, from: Position) -> Result<Subscription>;

    /// The position just past the last acknowledged event: what a reader that
    /// has seen everything would read from next. `Position::START` when empty.
    async fn head(&self) -> Result<Position>;

    /// The position of the oldest event this store can still read:
    /// `Position::START` unless its oldest events were archived out of it
    /// (the embedded log after `neonhub log archive`, whose reads before this
    /// position answer [`crate::Error::Archived`]). A reader that must see
    /// every event reads the archive first. By default `Position::START`.
    async fn first_position(&self) -> Result<Position> {
        Ok(Position::START)
    }

    /// Whether appends can be written now, for a readiness check:
    /// `Err(reason)` while the store's own writes fail (the embedded log on a
    /// full disk; it recovers by itself once a write succeeds). Answer not
    /// ready (HTTP 503) with the reason meanwhile. By default `Ok`.
    fn write_health(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// What a backend implements to feed a [`Subscription`].
#[async_trait]
pub trait SubscriptionSource: Send {
    /// The next event, waiting for one to be appended if the subscriber has
    /// caught up. Must be cancel-safe: dropping the future before it
    /// completes loses no event (the next call returns it).
    async fn next(&mut self) -> Result<RecordedEvent>;
}

/// A live feed of every event from a position on (see
/// [`EventStore::subscribe_all`]).
pub struct Subscription {
    source: Box<dyn SubscriptionSource>,
}

impl Subscription {
    /// Wraps a backend's source.
    pub fn new(source: impl SubscriptionSource + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }

    /// The next event in global order. Waits while there is none.
    /// Cancel-safe: if the future is dropped (a `select!` with a shutdown
    /// signal, a timeout), no event is lost.
    ///
    /// # Errors
    /// [`crate::Error::Closed`] once the store is closed; read errors.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        self.source.next().await
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
