//! Feeding one subscription: a confirmation, the stored events it follows,
//! `CaughtUp`, then each new event (with checkpoints for a filtered `$all`
//! subscription) until the client goes or the server cuts it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;

use super::messages::{content, event_message, timestamp_now};
use super::{ReadItem, SUBSCRIPTION_BATCH, Shared};
use crate::log::{Filter, Log, Stored};
use crate::proto::event_store::client::streams::{ReadResp, read_resp};

/// What a subscription follows.
pub(super) enum Target {
    Stream { name: String, after: Option<u64> },
    All { filter: Option<(Filter, u32)> },
}

/// Feeds one subscription: a confirmation, every stored event it follows
/// from `cursor` on, `CaughtUp`, then each new event, until the client goes.
/// A filtered `$all` subscription also gets checkpoints.
pub(super) async fn subscription(
    shared: Arc<Shared>,
    target: Target,
    cursor: usize,
    uuid_as_string: bool,
    tx: mpsc::Sender<ReadItem>,
) {
    let mut appended = shared.appended.subscribe();
    let mut cut = shared.cut.subscribe();
    let confirmation = content(read_resp::Content::Confirmation(
        read_resp::SubscriptionConfirmation {
            subscription_id: Uuid::new_v4().to_string(),
        },
    ));
    if tx.send(Ok(confirmation)).await.is_err() {
        return;
    }
    let mut cursor = Cursor {
        target,
        next: cursor,
        since_checkpoint: 0,
    };
    let mut caught_up = false;
    loop {
        appended.borrow_and_update();
        let batch = cursor.take(&shared.log(), uuid_as_string);
        let at_end = batch.at_end;
        if !send_batch(&tx, batch).await {
            return;
        }
        if !at_end {
            continue;
        }
        if !caught_up {
            caught_up = true;
            if !send_caught_up(&shared, &tx).await {
                return;
            }
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            _ = cut.changed() => {
                // What a node that steps down or shuts down does to its
                // subscriptions.
                let _ = tx.send(Err(Status::unavailable("the subscription was dropped"))).await;
                return;
            }
        }
    }
}

/// Where a subscription is in the log.
struct Cursor {
    target: Target,
    /// The index of `$all` it looks at next.
    next: usize,
    /// Events of `$all` since the last checkpoint (filtered `$all` only).
    since_checkpoint: u32,
}

/// What a subscription sends next.
struct Batch {
    messages: Vec<ReadResp>,
    /// The position of a checkpoint due after the messages.
    checkpoint: Option<u64>,
    /// Whether it reached the end of the log.
    at_end: bool,
}

impl Cursor {
    /// Takes up to [`SUBSCRIPTION_BATCH`] events the subscription follows
    /// from `log`, stopping early when a checkpoint is due.
    fn take(&mut self, log: &Log, uuid_as_string: bool) -> Batch {
        let mut messages = Vec::new();
        let mut checkpoint = None;
        while messages.len() < SUBSCRIPTION_BATCH {
            let Some(e) = log.get(self.next) else { break };
            self.next += 1;
            if self.wants(e, &mut checkpoint) {
                messages.push(event_message(e, uuid_as_string));
            }
            if checkpoint.is_some() {
                break;
            }
        }
        Batch {
            messages,
            checkpoint,
            at_end: self.next == log.len(),
        }
    }

    /// Whether the subscription follows `e`. A filtered `$all` subscription
    /// also counts it toward the next checkpoint, setting `checkpoint` to
    /// its position when one is due.
    fn wants(&mut self, e: &Stored, checkpoint: &mut Option<u64>) -> bool {
        match &self.target {
            Target::Stream { name, after } => {
                e.stream == *name && after.is_none_or(|a| e.revision > a)
            }
            Target::All { filter } => {
                if let Some((filter, interval)) = filter {
                    self.since_checkpoint += 1;
                    if self.since_checkpoint >= *interval {
                        self.since_checkpoint = 0;
                        *checkpoint = Some(e.position);
                    }
                    filter.allows(e)
                } else {
                    true
                }
            }
        }
    }
}

/// Sends a batch's events, then its checkpoint if one is due. `false`: the
/// client is gone.
async fn send_batch(tx: &mpsc::Sender<ReadItem>, batch: Batch) -> bool {
    for m in batch.messages {
        if tx.send(Ok(m)).await.is_err() {
            return false;
        }
    }
    if let Some(p) = batch.checkpoint {
        let c = read_resp::Checkpoint {
            commit_position: p,
            prepare_position: p,
            timestamp: Some(timestamp_now()),
        };
        if tx
            .send(Ok(content(read_resp::Content::Checkpoint(c))))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// Sends `CaughtUp` at the log's last position. `false`: the client is gone.
async fn send_caught_up(shared: &Shared, tx: &mpsc::Sender<ReadItem>) -> bool {
    let position = shared.log().last_position().map(|p| read_resp::Position {
        commit_position: p,
        prepare_position: p,
    });
    let msg = read_resp::CaughtUp {
        timestamp: Some(timestamp_now()),
        stream_revision: None,
        position,
    };
    tx.send(Ok(content(read_resp::Content::CaughtUp(msg))))
        .await
        .is_ok()
}
