//! Run events for other actors: a `Recipient` subscribed from a position
//! gets every stored run event, then each new one, in log order, backed by
//! the store's subscription (bounded memory: one event in hand at a time).

use actix::prelude::*;
use neonhub_events::{Codec, Metadata, Position, Revision, RunEvent, SharedStore, StreamId};

use crate::error::Result;

/// One run event, delivered to a subscribed recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEventNotice {
    /// Its place in the global order: resubscribe from `position.next()` to
    /// go on after it.
    pub position: Position,
    /// The run's stream.
    pub stream: StreamId,
    /// Its revision in the stream.
    pub revision: Revision,
    /// Correlation and causation.
    pub metadata: Metadata,
    /// The event.
    pub event: RunEvent,
}

impl Message for RunEventNotice {
    type Result = ();
}

/// A running subscription; dropping it (or [`SubscriptionHandle::stop`])
/// ends it. It also ends when the recipient stops or the store closes.
#[derive(Debug)]
pub struct SubscriptionHandle {
    task: tokio::task::JoinHandle<()>,
}

impl SubscriptionHandle {
    /// Ends the subscription.
    pub fn stop(self) {}

    /// Whether the subscription has ended (recipient gone, store closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes `recipient` to every run event from `from` on (catch up, then
/// live). Events that are not run events are skipped. Each event is
/// delivered with `send`, so a slow recipient slows the feed rather than
/// making it buffer.
///
/// # Errors
/// The store's, if it cannot subscribe.
pub async fn subscribe(
    store: &SharedStore,
    codec: Codec,
    from: Position,
    recipient: Recipient<RunEventNotice>,
) -> Result<SubscriptionHandle> {
    let mut subscription = store.subscribe_all(from).await?;
    let task = tokio::spawn(async move {
        loop {
            let recorded = match subscription.next().await {
                Ok(recorded) => recorded,
                Err(e) => {
                    tracing::info!(error = %e, "run event subscription ended");
                    return;
                }
            };
            let event = match codec.decode(&recorded) {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping an event that is not a run event");
                    continue;
                }
            };
            let notice = RunEventNotice {
                position: recorded.position,
                stream: recorded.stream,
                revision: recorded.revision,
                metadata: recorded.metadata,
                event,
            };
            if recipient.send(notice).await.is_err() {
                return;
            }
        }
    });
    Ok(SubscriptionHandle { task })
}
