//! The time a connector's circuit breakers count their cool-downs in: the
//! real monotonic clock, or a [`ManualClock`] a test moves forward, so no
//! test of a breaker waits on real time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a connector reads the time for its breakers (see
/// [`ConnectorOptions::clock`](super::ConnectorOptions::clock)): the real
/// clock by default, or a [`ManualClock`].
///
/// Reading it is `Instant::now()` plus one branch; a manual clock adds one
/// atomic load.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The real monotonic clock (`Instant::now()`), the default.
    pub fn real() -> Self {
        Self::default()
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.now(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self {
            manual: Some(manual),
        }
    }
}

impl PartialEq for Clock {
    /// Both real, or the same manual clock.
    fn eq(&self, other: &Self) -> bool {
        match (&self.manual, &other.manual) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(&a.elapsed_nanos, &b.elapsed_nanos),
            _ => false,
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::Real"),
            Some(manual) => write!(f, "Clock::Manual(+{:?})", manual.elapsed()),
        }
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it; its
/// clones share one time. For tests: hand it to a connector as
/// `ConnectorOptions { clock: manual.clone().into(), .. }` and move it past a
/// breaker's cool-down instead of sleeping through it.
///
/// ```
/// use std::time::Duration;
/// use neonhub_actors::{Clock, ManualClock};
///
/// let manual = ManualClock::new();
/// let clock = Clock::from(manual.clone());
/// let before = clock.now();
/// manual.advance(Duration::from_secs(30));
/// assert_eq!(clock.now() - before, Duration::from_secs(30));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed_nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading the real time of its making, until advanced.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            elapsed_nanos: Arc::default(),
        }
    }

    /// Moves the clock (and every clone of it) `by` forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// How far it was moved since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
    }

    /// The time it reads.
    pub fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_its_clones_share_it() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let t0 = clock.now();
        assert_eq!(clock.now(), t0, "it stands still");
        manual.clone().advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), t0 + Duration::from_millis(1500));
        assert_eq!(clock, Clock::from(manual));
        assert_ne!(clock, Clock::from(ManualClock::new()));
        assert_ne!(clock, Clock::real());
        assert_eq!(Clock::real(), Clock::default());
    }

    #[test]
    fn the_real_clock_reads_instant_now() {
        let before = Instant::now();
        let now = Clock::real().now();
        assert!(now >= before && now <= Instant::now());
    }
}
