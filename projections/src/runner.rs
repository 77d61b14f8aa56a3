//! The projection runner: feeds a [`Projection`] from its checkpoint, first
//! catching up from the log in batches, then following it live.

use std::future::Future;
use std::time::Duration;

use neonhub_events::{Position, RecordedEvent, SharedStore};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::health::{ProjectionHealth, ProjectionState, is_transient};

/// The first wait before a retry; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A read model built from the log.
///
/// A projection applies batches of events in log order. Applying a batch
/// writes the projection's state *and* its checkpoint (the position just past
/// the batch's last event) in one transaction: after a crash the projection
/// is exactly the log's prefix up to its checkpoint, never an event twice or
/// one skipped.
pub trait Projection: Send {
    /// A short stable name, used in errors and logs.
    fn name(&self) -> &'static str;

    /// The position of the next event to apply (`Position::START` when
    /// nothing was applied yet).
    fn checkpoint(&self) -> Position;

    /// Applies `batch` (consecutive events of the log, starting at or after
    /// the checkpoint) and moves the checkpoint past its last event, all in
    /// one transaction, and returns the new checkpoint. Events before the
    /// checkpoint are ignored.
    ///
    /// # Errors
    /// [`crate::Error::Apply`] naming the position and type of the first
    /// event that does not apply; nothing of the batch is then written.
    fn apply(&mut self, batch: &[RecordedEvent]) -> Result<Position>;
}

/// The default number of events per transaction.
pub const DEFAULT_BATCH_SIZE: usize = 4096;
/// A batch taken from the subscription stops growing past this many bytes
/// of payload: a projection behind a log of large runs (inputs of 100 KB)
/// holds megabytes, not the 400 MB 4096 such events are.
const BATCH_BYTES: usize = 8 << 20;

/// Feeds one projection from the store: [`ProjectionRunner::catch_up`] reads
/// the log in batches from the checkpoint; [`ProjectionRunner::run`] catches
/// up and then follows the store's subscription until shut down.
///
/// The projection's work is synchronous (SQLite): run the runner on a task
/// of its own.
pub struct ProjectionRunner<P> {
    store: SharedStore,
    projection: P,
    batch_size: usize,
    progress: watch::Sender<Position>,
    health: ProjectionHealth,
}

impl<P: Projection> ProjectionRunner<P> {
    /// A runner feeding `projection` from `store`.
    pub fn new(store: SharedStore, projection: P) -> Self {
        let (progress, _) = watch::channel(projection.checkpoint());
        Self {
            store,
            projection,
            batch_size: DEFAULT_BATCH_SIZE,
            progress,
            health: ProjectionHealth::default(),
        }
    }

    /// Where the projection stands, kept up to date by [`ProjectionRunner::run`].
    pub fn health(&self) -> ProjectionHealth {
        self.health.clone()
    }

    /// Sets the largest number of events applied per transaction (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Gives the projection back.
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// A receiver of the checkpoint after each committed batch; wait on it
    /// for a position to be applied (e.g. `wait_for(|p| *p >= head)`).
    pub fn checkpoints(&self) -> watch::Receiver<Position> {
        self.progress.subscribe()
    }

    /// Applies every event from the checkpoint up to the store's current end,
    /// in batches, and returns the new checkpoint.
    ///
    /// # Errors
    /// Store errors, [`crate::Error::Apply`] for an event that does not
    /// apply (the projection stops before it), and
    /// [`crate::Error::AheadOfLog`] when the checkpoint is past the log's
    /// head (nothing is applied).
    pub async fn catch_up(&mut self) -> Result<Position> {
        let head = self.store.head().await?;
        let checkpoint = self.projection.checkpoint();
        if checkpoint > head {
            self.health.set(ProjectionState::Ahead { checkpoint, head });
            return Err(Error::AheadOfLog { checkpoint, head });
        }
        loop {
            let from = self.projection.checkpoint();
            let batch = self.store.read_all(from, self.batch_size).await?;
            if batch.is_empty() {
                return Ok(from);
            }
            let full = batch.len() == self.batch_size;
            self.apply(&batch)?;
            if !full && self.store.head().await? <= self.projection.checkpoint() {
                return Ok(self.projection.checkpoint());
            }
        }
    }

    /// Catches up, then follows the log live until `shutdown` completes.
    /// Events arriving together are applied together, up to the batch size.
    ///
    /// A transient error (a busy or locked SQLite file, a failed store
    /// read) is counted in [`ProjectionRunner::health`] and retried with
    /// backoff until it clears: the runner does not stop for it.
    ///
    /// # Errors
    /// [`crate::Error::Apply`] for an event that does not apply: the runner
    /// stops there and never skips it. [`crate::Error::AheadOfLog`] when the
    /// checkpoint is past the log's head. A closed store.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut backoff = FIRST_BACKOFF;
        'follow: loop {
            let caught_up = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                caught_up = self.catch_up() => caught_up,
            };
            if let Err(e) = caught_up {
                if !self.wait_to_retry(e, &mut backoff, &mut shutdown).await? {
                    return Ok(());
                }
                continue 'follow;
            }
            let mut subscription =
                match self.store.subscribe_all(self.projection.checkpoint()).await {
                    Ok(s) => s,
                    Err(e) => {
                        if !self
                            .wait_to_retry(e.into(), &mut backoff, &mut shutdown)
                            .await?
                        {
                            return Ok(());
                        }
                        continue 'follow;
                    }
                };
            self.health.set(ProjectionState::Following);
            backoff = FIRST_BACKOFF;
            let mut batch: Vec<RecordedEvent> = Vec::with_capacity(self.batch_size);
            loop {
                let first = tokio::select! {
                    biased;
                    () = &mut shutdown => return Ok(()),
                    event = subscription.next() => event,
                };
                let first = match first {
                    Ok(event) => event,
                    Err(e) => {
                        if !self
                            .wait_to_retry(e.into(), &mut backoff, &mut shutdown)
                            .await?
                        {
                            return Ok(());
                        }
                        continue 'follow;
                    }
                };
                batch.clear();
                let mut bytes = first.payload.len();
                batch.push(first);
                // Take more only while they are already there: one poll each.
                // `Subscription::next` is cancel-safe, so a poll that finds
                // nothing loses nothing. (Asking the store's head instead would
                // hold a batch back on EventStoreDB, whose head counts system
                // events neonhub never sees.)
                let mut failed = None;
                while batch.len() < self.batch_size && bytes < BATCH_BYTES {
                    match poll_once(subscription.next()) {
                        Some(Ok(event)) => {
                            bytes += event.payload.len();
                            batch.push(event);
                        }
                        Some(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        None => break,
                    }
                }
                // The batch is applied again and again until it commits (a
                // failed transaction wrote nothing).
                while let Err(e) = self.apply(&batch) {
                    if !self.wait_to_retry(e, &mut backoff, &mut shutdown).await? {
                        return Ok(());
                    }
                }
                if self.health.state() != ProjectionState::Following {
                    tracing::info!(
                        projection = self.projection.name(),
                        checkpoint = %self.projection.checkpoint(),
                        "the projection applies again"
                    );
                    self.health.set(ProjectionState::Following);
                }
                backoff = FIRST_BACKOFF;
                if let Some(e) = failed {
                    if !self
                        .wait_to_retry(e.into(), &mut backoff, &mut shutdown)
                        .await?
                    {
                        return Ok(());
                    }
                    continue 'follow;
                }
            }
        }
    }

    /// Counts `error`; for a transient one, waits `backoff` (doubling it)
    /// and returns `true` to retry, or `false` if `shutdown` came first;
    /// else records that the runner stopped and returns the error.
    async fn wait_to_retry(
        &mut self,
        error: Error,
        backoff: &mut Duration,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<bool> {
        let kind = self.health.count(&error);
        if !is_transient(&error) {
            if !matches!(error, Error::AheadOfLog { .. }) {
                self.health.set(ProjectionState::Stopped {
                    message: error.to_string(),
                });
            }
            return Err(error);
        }
        tracing::warn!(
            projection = self.projection.name(),
            kind,
            retry_in = ?*backoff,
            "the projection retries after a transient error: {error}"
        );
        self.health.set(ProjectionState::Retrying {
            kind,
            message: error.to_string(),
        });
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            biased;
            () = shutdown.as_mut() => Ok(false),
            () = tokio::time::sleep(wait) => Ok(true),
        }
    }

    fn apply(&mut self, batch: &[RecordedEvent]) -> Result<()> {
        let checkpoint = self.projection.apply(batch)?;
        self.progress.send_replace(checkpoint);
        tracing::trace!(projection = self.projection.name(), %checkpoint, "applied batch");
        Ok(())
    }
}

impl<P> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("batch_size", &self.batch_size)
            .field("checkpoint", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}

/// Polls `future` once: its output if it is ready at once, else `None` (and
/// the future is dropped).
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
