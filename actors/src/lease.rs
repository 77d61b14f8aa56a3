//! Node leases on a shared store: a node renews its lease by appending
//! `LeaseRenewed` to `lease-<node id>`; other nodes watch those streams and
//! call a lease expired when they have seen no renewal for the lease's length.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use neonhub_events::{
    Direction, EventStore, ExpectedRevision, LeaseRenewed, NodeId, ReadFrom, Revision, Timestamp,
};

use crate::error::Result;

/// The default lease length.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Appends a renewal of `node`'s lease of length `lease`.
///
/// # Errors
/// The store's.
pub async fn renew_lease(store: &dyn EventStore, node: &NodeId, lease: Duration) -> Result<()> {
    let renewed = LeaseRenewed {
        node: node.clone(),
        lease_millis: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
        renewed_at: Timestamp::now(),
    };
    store
        .append(
            &node.lease_stream(),
            ExpectedRevision::Any,
            vec![renewed.encode()?],
        )
        .await?;
    Ok(())
}

/// What an observer last saw of one node's lease stream.
#[derive(Debug)]
struct Seen {
    /// The stream's last revision (`None`: no renewal yet).
    revision: Option<Revision>,
    /// When this observer first saw that revision, by its own clock.
    since: Instant,
    /// The lease the node declared in that renewal.
    lease: Duration,
}

/// Other nodes' leases as this node observes them.
///
/// Clocks are never compared across nodes: a lease is expired once this
/// observer has seen the node's lease stream stay unchanged for the lease's
/// length, measured on its own monotonic clock from when it first saw the
/// last renewal. The assumption is only that clocks tick at about the same
/// rate and that a renewal becomes readable well within a third of a lease
/// (a node renews every third of its lease). A node only just started has
/// seen nothing yet, so it calls no lease expired before one lease has
/// passed.
#[derive(Debug)]
pub struct LeaseWatch {
    default_lease: Duration,
    seen: HashMap<NodeId, Seen>,
}

impl LeaseWatch {
    /// A watch that has seen nothing yet; a node that never renewed is
    /// given `default_lease` (this node's own).
    pub fn new(default_lease: Duration) -> Self {
        Self {
            default_lease,
            seen: HashMap::new(),
        }
    }

    /// Reads `node`'s latest renewal and notes whether it changed, as seen
    /// at `now` (`Instant::now()` once the read is done).
    ///
    /// # Errors
    /// The store's, or a renewal that does not decode.
    pub async fn observe(
        &mut self,
        store: &dyn EventStore,
        node: &NodeId,
        now: impl FnOnce() -> Instant,
    ) -> Result<()> {
        let last = store
            .read_stream(&node.lease_stream(), Direction::Backwards, ReadFrom::End, 1)
            .await?;
        let now = now();
        let (revision, lease) = match last.first() {
            Some(recorded) => {
                let renewed = LeaseRenewed::decode(recorded)?;
                (
                    Some(recorded.revision),
                    Duration::from_millis(renewed.lease_millis),
                )
            }
            None => (None, self.default_lease),
        };
        match self.seen.get_mut(node) {
            Some(seen) if seen.revision == revision => {}
            _ => {
                self.seen.insert(
                    node.clone(),
                    Seen {
                        revision,
                        since: now,
                        lease,
                    },
                );
            }
        }
        Ok(())
    }

    /// Whether `node`'s lease is expired at `now`: observed unchanged for a
    /// whole lease. A node never observed is not expired.
    pub fn is_expired(&self, node: &NodeId, now: Instant) -> bool {
        self.seen
            .get(node)
            .is_some_and(|seen| now.saturating_duration_since(seen.since) >= seen.lease)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use neonhub_events::{EmbeddedLog, LogOptions};

    use super::*;

    #[tokio::test]
    async fn a_lease_expires_only_after_a_whole_lease_without_renewal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap());
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let lease = Duration::from_secs(3);
        let mut watch = LeaseWatch::new(lease);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        renew_lease(&*store, &a, lease).await.unwrap();
        watch.observe(&*store, &a, || at(0)).await.unwrap();
        watch.observe(&*store, &b, || at(0)).await.unwrap();
        assert!(!watch.is_expired(&a, at(0)) && !watch.is_expired(&b, at(0)));

        renew_lease(&*store, &a, lease).await.unwrap();
        watch.observe(&*store, &a, || at(2)).await.unwrap();
        watch.observe(&*store, &b, || at(2)).await.unwrap();
        assert!(!watch.is_expired(&a, at(2)) && !watch.is_expired(&b, at(2)));

        watch.observe(&*store, &a, || at(3)).await.unwrap();
        watch.observe(&*store, &b, || at(3)).await.unwrap();
        assert!(!watch.is_expired(&a, at(3)), "renewed a second ago");
        assert!(
            watch.is_expired(&b, at(3)),
            "never renewed, watched for a lease"
        );

        watch.observe(&*store, &a, || at(4)).await.unwrap();
        assert!(!watch.is_expired(&a, at(4)), "2 s of a 3 s lease");
        watch.observe(&*store, &a, || at(5)).await.unwrap();
        assert!(watch.is_expired(&a, at(5)), "no renewal for a whole lease");

        // A renewal seen again: live again, for a whole lease.
        renew_lease(&*store, &a, lease).await.unwrap();
        watch.observe(&*store, &a, || at(6)).await.unwrap();
        assert!(!watch.is_expired(&a, at(8)));
        assert!(watch.is_expired(&a, at(9)));
        assert!(
            !watch.is_expired(&NodeId::new("c").unwrap(), at(100)),
            "never seen"
        );
    }
}
