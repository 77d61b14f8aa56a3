//! A process crash as the log sees it: [`Crashing`] wraps a store and, from
//! a chosen append on (or from [`Crashing::die`]), fails every call, as
//! nothing of a dead process reaches the log. A new orchestrator on the
//! wrapped store then finds what the dead one left.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use neonhub_events::{
    AppendResult, Direction, Error, EventData, EventStore, ExpectedRevision, Position, ReadFrom,
    RecordedEvent, Result, SharedStore, StreamId, Subscription,
};

/// A crash at append number `at` (0-based) of a life: that append and every
/// later call fail; with `durable`, that append reaches the log first (the
/// process died after the write, before the acknowledgement).
#[derive(Clone, Copy, Debug)]
pub struct Crash {
    /// The append that crashes, counted from 0.
    pub at: u64,
    /// Whether that append is written before the crash.
    pub durable: bool,
}

/// The log as one life of the process sees it: every call goes through to
/// `inner` until the life crashes at its append `crash.at` or [`Self::die`]
/// is called; from then on every call fails.
pub struct Crashing {
    inner: SharedStore,
    crash: Option<Crash>,
    appends: AtomicU64,
    crashed: AtomicBool,
}

impl Crashing {
    /// A life on `inner` that crashes as `crash` says, or only when it dies.
    pub fn new(inner: SharedStore, crash: Option<Crash>) -> Self {
        Self {
            inner,
            crash,
            appends: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
        }
    }

    /// The process dies: nothing more reaches the log through this store.
    pub fn die(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    /// Whether it died (or crashed at its append).
    pub fn is_dead(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    fn alive(&self) -> Result<()> {
        if self.is_dead() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EventStore for Crashing {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        self.alive()?;
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        if let Some(crash) = self.crash
            && n >= crash.at
        {
            self.crashed.store(true, Ordering::SeqCst);
            if n == crash.at && crash.durable {
                // Written, but the process died before it could say so.
                let _ = self.inner.append(stream, expected, events).await;
            }
            return Err(Error::Closed);
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.alive()?;
        self.inner.read_stream(stream, direction, from, limit).await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.alive()?;
        self.inner.read_all(from, limit).await
    }

    async fn subscribe_all(&self, from: Position) -> Result<Subscription> {
        self.alive()?;
        self.inner.subscribe_all(from).await
    }

    async fn head(&self) -> Result<Position> {
        self.alive()?;
        self.inner.head().await
    }
}
