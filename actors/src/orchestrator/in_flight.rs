//! The runs in flight: a count the orchestrator bounds, and a wait for it to
//! reach zero (what shutdown drains on), without a lock on the run path.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The number of runs accepted and not finished, shared by the orchestrator
/// and whoever waits for it to drain ([`super::WatchInFlight`]).
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Runs in flight now.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no run is in flight (at once if none is).
    pub async fn idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A slot, if fewer than `max` runs are in flight.
    pub(super) fn acquire(self: &Arc<Self>, max: usize) -> Option<InFlightSlot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlightSlot(Arc::clone(self)))
    }
}

/// Frees a slot of the in-flight bound when the run's task ends; the last
/// one out wakes whoever waits for [`InFlight::idle`].
#[derive(Debug)]
pub(super) struct InFlightSlot(Arc<InFlight>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_slot_and_the_bound_holds() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.idle().await;
        let a = in_flight.acquire(2).unwrap();
        let b = in_flight.acquire(2).unwrap();
        assert!(
            in_flight.acquire(2).is_none(),
            "the bound of 2 let a third in"
        );
        assert_eq!(in_flight.get(), 2);
        let waiter = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            async move { in_flight.idle().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "idle while a run was still in flight"
        );
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("idle after the last slot")
            .unwrap();
        assert_eq!(in_flight.get(), 0);
    }
}
