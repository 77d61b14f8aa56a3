//! Subscriptions to `$all`: a task on the backend's own runtime follows the
//! client's catch-up subscription (filtered to neonhub's streams) and hands
//! events over a bounded channel, so a stuck gRPC stream never blocks the
//! caller's runtime (an actix arbiter) and a slow subscriber only makes the
//! server wait (gRPC flow control), never a buffer grow.

use std::time::Duration;

use async_trait::async_trait;
use kurrentdb::{StreamPosition, SubscribeToAllOptions};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::esdb::connection::{CallError, SharedConnection, backoff};
use crate::esdb::error::client_is_dead;
use crate::esdb::mapping::{AllFrom, all_from, commit_of, is_ours, position_of, recorded};
use crate::esdb::store::{first_at, subscription_error, subscription_filter};
use crate::ids::Position;
use crate::store::{RecordedEvent, Subscription, SubscriptionSource};

/// Events handed over but not yet taken by the subscriber.
const CHANNEL_CAPACITY: usize = 256;
/// Consecutive failed (re)subscriptions before the error is handed over.
const MAX_RESUBSCRIBE_ATTEMPTS: u32 = 8;

/// Starts following `$all` from `from` (included) on `runtime`.
pub(crate) fn start(
    connection: SharedConnection,
    runtime: &tokio::runtime::Handle,
    from: Position,
) -> Subscription {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    runtime.spawn(follow(connection, from, tx));
    Subscription::new(EsdbSubscription { rx })
}

/// The subscriber's end.
struct EsdbSubscription {
    rx: mpsc::Receiver<Result<RecordedEvent>>,
}

#[async_trait]
impl SubscriptionSource for EsdbSubscription {
    async fn next(&mut self) -> Result<RecordedEvent> {
        // The task is gone only when the store's runtime was shut down (every
        // store handle dropped) or after it handed over its final error.
        self.rx.recv().await.unwrap_or(Err(Error::Closed))
    }
}

/// Whether resubscribing may get past this error.
fn transient(e: &kurrentdb::Error) -> bool {
    client_is_dead(e)
        || matches!(
            e,
            kurrentdb::Error::ServerError(_)
                | kurrentdb::Error::NotLeaderException(_)
                | kurrentdb::Error::DeadlineExceeded
        )
}

/// The subscription task: the event at an inclusive start first (the
/// server's subscriptions start after their position), then the server's
/// subscription from just after the last event seen, resubscribing from
/// there after a transient failure so nothing is skipped or repeated.
async fn follow(
    connection: SharedConnection,
    from: Position,
    tx: mpsc::Sender<Result<RecordedEvent>>,
) {
    // After this commit position; `None`: from the start of `$all`.
    let mut after = match all_from(from) {
        AllFrom::Start => None,
        AllFrom::After(c) => Some(c),
        AllFrom::At(c) => {
            match first_at(&connection, c).await {
                Ok(Some(e)) if position_of(c).is_ok_and(|p| p == e.position) => {
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            Some(c)
        }
    };
    let mut failures = 0u32;
    loop {
        let (generation, client) = match connection.client().await {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let position = match after {
            None => StreamPosition::Start,
            Some(c) => StreamPosition::Position(kurrentdb::Position {
                commit: c,
                prepare: c,
            }),
        };
        let options = SubscribeToAllOptions::default()
            .position(position)
            .filter(subscription_filter());
        let mut sub = client.subscribe_to_all(&options).await;
        let failure = loop {
            let next = tokio::select! {
                next = sub.next() => next,
                // The subscriber dropped its end: stop reading.
                () = tx.closed() => return,
            };
            match next {
                Ok(resolved) => {
                    let Some(e) = resolved.event.or(resolved.link) else {
                        continue;
                    };
                    failures = 0;
                    after = Some(commit_of(e.position));
                    if !is_ours(&e) {
                        continue;
                    }
                    if tx.send(recorded(e)).await.is_err() {
                        return;
                    }
                }
                Err(e) => break e,
            }
        };
        if client_is_dead(&failure) {
            connection.dead(generation);
        }
        failures += 1;
        if !transient(&failure) || failures > MAX_RESUBSCRIBE_ATTEMPTS {
            let _ = tx
                .send(Err(subscription_error(CallError::Client(failure))))
                .await;
            return;
        }
        tracing::warn!(error = %failure, failures, "EventStoreDB subscription dropped; resubscribing");
        tokio::time::sleep(backoff(failures).max(Duration::from_millis(10))).await;
    }
}
