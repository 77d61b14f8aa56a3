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
            if !send_first_at(&connection, c, &tx).await {
                return;
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
        let mut sub = client.subscribe_to_all(&subscribe_options(after)).await;
        let Some(failure) = forward(&mut sub, &tx, &mut after, &mut failures).await else {
            return;
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

/// Hands over the event at commit position `c`, if there is one, for a
/// subscription that includes its start. `false`: stop (the subscriber is
/// gone, or the error reading it was handed over).
async fn send_first_at(
    connection: &SharedConnection,
    c: u64,
    tx: &mpsc::Sender<Result<RecordedEvent>>,
) -> bool {
    match first_at(connection, c).await {
        Ok(Some(e)) if position_of(c).is_ok_and(|p| p == e.position) => {
            tx.send(Ok(e)).await.is_ok()
        }
        Ok(_) => true,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            false
        }
    }
}

/// Options of the server's subscription to neonhub's streams, from just
/// after commit position `after` (`None`: from the start of `$all`).
fn subscribe_options(after: Option<u64>) -> SubscribeToAllOptions {
    let position = match after {
        None => StreamPosition::Start,
        Some(c) => StreamPosition::Position(kurrentdb::Position {
            commit: c,
            prepare: c,
        }),
    };
    SubscribeToAllOptions::default()
        .position(position)
        .filter(subscription_filter())
}

/// Hands over neonhub's events from `sub`, moving `after` past every event
/// seen and resetting `failures` once one arrives. Returns the error that
/// ended the subscription, or `None` when the subscriber dropped its end.
async fn forward(
    sub: &mut kurrentdb::Subscription,
    tx: &mpsc::Sender<Result<RecordedEvent>>,
    after: &mut Option<u64>,
    failures: &mut u32,
) -> Option<kurrentdb::Error> {
    loop {
        let next = tokio::select! {
            next = sub.next() => next,
            // The subscriber dropped its end: stop reading.
            () = tx.closed() => return None,
        };
        match next {
            Ok(resolved) => {
                let Some(e) = resolved.event.or(resolved.link) else {
                    continue;
                };
                *failures = 0;
                *after = Some(commit_of(e.position));
                if !is_ours(&e) {
                    continue;
                }
                if tx.send(recorded(e)).await.is_err() {
                    return None;
                }
            }
            Err(e) => return Some(e),
        }
    }
}
