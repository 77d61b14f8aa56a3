//! A circuit breaker: closed (calls pass, vendor failures counted), open
//! (calls fail fast until a cool-down ends), half-open (exactly one probe
//! decides). A generation counter keeps outcomes of calls that began before
//! it last opened from deciding anything.

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

/// What [`CircuitBreaker::try_acquire`] hands a call that may go out: the
/// breaker's generation when it did (one more every time it opens), so an
/// outcome that arrives after the breaker opened again says nothing about
/// its present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    generation: u64,
}

/// The breaker of one endpoint group; owned by its connector's guard.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
    generation: u64,
}

impl CircuitBreaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
            generation: 0,
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

    /// Whether a call may go out at `now` (its ticket) or not (`None`); in
    /// half-open, only one probe at a time.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Option<Ticket> {
        match self.inner {
            Inner::Closed { .. } => {}
            Inner::Open { until } if now < until => return None,
            Inner::HalfOpen { probing: true } => return None,
            Inner::Open { .. } | Inner::HalfOpen { probing: false } => {
                self.inner = Inner::HalfOpen { probing: true };
            }
        }
        Some(Ticket {
            generation: self.generation,
        })
    }

    /// Whether `ticket`'s call began in the breaker's present generation.
    fn current(&self, ticket: Ticket) -> bool {
        ticket.generation == self.generation
    }

    /// `ticket`'s call ended saying nothing about the vendor (it was cut
    /// off, or paced by the vendor with a 429): a probe lets the next call
    /// probe.
    pub(crate) fn release(&mut self, ticket: Ticket) {
        if let (Inner::HalfOpen { probing: true }, true) = (&self.inner, self.current(ticket)) {
            self.inner = Inner::HalfOpen { probing: false };
        }
    }

    /// `ticket`'s call got an answer (a success, or a 4xx: the vendor is
    /// up): closes, unless the breaker opened after the call began.
    pub(crate) fn on_success(&mut self, ticket: Ticket) {
        if self.current(ticket) {
            self.inner = Inner::Closed { failures: 0 };
        }
    }

    /// `ticket`'s call failed at `now` for the vendor's fault (a 5xx, a
    /// timeout, no connection): counted; opens at the threshold, reopens at
    /// once after a failed probe. A failure of a call that began before the
    /// breaker last opened is already paid for.
    pub(crate) fn on_failure(&mut self, ticket: Ticket, now: Instant) {
        if !self.current(ticket) {
            return;
        }
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 < self.config.failure_threshold => {
                Inner::Closed {
                    failures: failures + 1,
                }
            }
            Inner::Closed { .. } | Inner::HalfOpen { .. } => {
                self.generation += 1;
                Inner::Open {
                    until: now + self.config.open_for,
                }
            }
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

    fn open(b: &mut CircuitBreaker, t: Instant) {
        for _ in 0..3 {
            let ticket = b.try_acquire(t).unwrap();
            b.on_failure(ticket, t);
        }
        assert_eq!(b.state(t), BreakerState::Open);
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..2 {
            let ticket = b.try_acquire(t).unwrap();
            b.on_failure(ticket, t);
            assert_eq!(b.state(t), BreakerState::Closed);
        }
        let ticket = b.try_acquire(t).unwrap();
        b.on_failure(ticket, t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert!(b.try_acquire(t + Duration::from_secs(9)).is_none());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = breaker();
        let t = Instant::now();
        let ticket = b.try_acquire(t).unwrap();
        b.on_failure(ticket, t);
        b.on_failure(ticket, t);
        b.on_success(ticket);
        b.on_failure(ticket, t);
        b.on_failure(ticket, t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_and_its_outcome_decides() {
        let mut b = breaker();
        let t = Instant::now();
        open(&mut b, t);
        let later = t + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let probe = b.try_acquire(later).expect("the probe goes out");
        for _ in 0..10 {
            assert!(b.try_acquire(later).is_none(), "only one probe at a time");
        }
        b.on_failure(probe, later);
        assert_eq!(b.state(later), BreakerState::Open, "a failed probe reopens");

        let again = later + Duration::from_secs(10);
        let probe = b.try_acquire(again).unwrap();
        b.on_success(probe);
        assert_eq!(b.state(again), BreakerState::Closed, "a good probe closes");
        assert!(b.try_acquire(again).is_some());
    }

    #[test]
    fn a_released_probe_lets_the_next_call_probe() {
        let mut b = breaker();
        let t = Instant::now();
        open(&mut b, t);
        let later = t + Duration::from_secs(11);
        let probe = b.try_acquire(later).unwrap();
        b.release(probe);
        assert!(b.try_acquire(later).is_some());
    }

    #[test]
    fn a_success_that_began_before_the_breaker_opened_leaves_it_open() {
        let mut b = breaker();
        let t = Instant::now();
        let slow = b.try_acquire(t).unwrap();
        open(&mut b, t);
        b.on_success(slow);
        assert_eq!(b.state(t), BreakerState::Open);
        // Nor does it close the half-open breaker, or free its probe.
        let later = t + Duration::from_secs(10);
        let probe = b.try_acquire(later).unwrap();
        b.on_success(slow);
        b.release(slow);
        assert!(b.try_acquire(later).is_none(), "the probe is still out");
        b.on_success(probe);
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn a_late_failure_of_an_old_call_does_not_count_again() {
        let mut b = breaker();
        let t = Instant::now();
        let slow = b.try_acquire(t).unwrap();
        open(&mut b, t);
        let later = t + Duration::from_secs(10);
        let probe = b.try_acquire(later).unwrap();
        b.on_success(probe);
        b.on_failure(slow, later);
        b.on_failure(slow, later);
        b.on_failure(slow, later);
        assert_eq!(b.state(later), BreakerState::Closed);
    }
}
