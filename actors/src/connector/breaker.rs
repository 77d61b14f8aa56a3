//! A circuit breaker: closed (calls pass, failures counted), open (calls
//! fail fast until a cool-down ends), half-open (one probe decides).

use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive retryable failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting one probe through (half-open).
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// The state of a breaker, as reported to operators and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast with `circuit_open`.
    Open,
    /// The cool-down is over: the next call is a probe; its outcome closes
    /// or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open: the value of the
    /// `neonhub_circuit_breaker_state` gauge.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker itself; owned by one connector actor, so no locking.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
}

impl CircuitBreaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now`.
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out at `now`; in half-open, only one probe.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        match self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if now < until => false,
            Inner::Open { .. } => {
                self.inner = Inner::HalfOpen { probing: true };
                true
            }
            Inner::HalfOpen { probing: true } => false,
            Inner::HalfOpen { probing: false } => {
                self.inner = Inner::HalfOpen { probing: true };
                true
            }
        }
    }

    /// An acquired call did not go out after all (rate limited).
    pub(crate) fn release(&mut self) {
        if let Inner::HalfOpen { probing: true } = self.inner {
            self.inner = Inner::HalfOpen { probing: false };
        }
    }

    /// The call succeeded (or failed in a way that says nothing about the
    /// service's health, like a 4xx): close.
    pub(crate) fn on_success(&mut self) {
        self.inner = Inner::Closed { failures: 0 };
    }

    /// The call failed retryably at `now`: count it; open at the threshold,
    /// and reopen at once after a failed probe.
    pub(crate) fn on_failure(&mut self, now: Instant) {
        let open = Inner::Open {
            until: now + self.config.open_for,
        };
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 < self.config.failure_threshold => {
                Inner::Closed {
                    failures: failures + 1,
                }
            }
            Inner::Closed { .. } | Inner::HalfOpen { .. } => open,
            Inner::Open { until } => Inner::Open { until },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..2 {
            assert!(b.try_acquire(t));
            b.on_failure(t);
            assert_eq!(b.state(t), BreakerState::Closed);
        }
        assert!(b.try_acquire(t));
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert!(!b.try_acquire(t + Duration::from_secs(9)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = breaker();
        let t = Instant::now();
        b.on_failure(t);
        b.on_failure(t);
        b.on_success();
        b.on_failure(t);
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.on_failure(t);
        }
        let later = t + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.try_acquire(later), "the probe goes out");
        assert!(!b.try_acquire(later), "only one probe at a time");
        b.on_failure(later);
        assert_eq!(b.state(later), BreakerState::Open, "a failed probe reopens");

        let again = later + Duration::from_secs(10);
        assert!(b.try_acquire(again));
        b.on_success();
        assert_eq!(b.state(again), BreakerState::Closed, "a good probe closes");
        assert!(b.try_acquire(again));
    }

    #[test]
    fn a_released_probe_lets_the_next_call_probe() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.on_failure(t);
        }
        let later = t + Duration::from_secs(11);
        assert!(b.try_acquire(later));
        b.release();
        assert!(b.try_acquire(later));
    }
}
