//! A connector's rate limit: a token bucket (governor's GCRA) that fails a
//! call fast with `rate_limited` instead of queueing it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};

/// At most `burst` calls at once, refilled by one every `replenish_every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls that may go out back to back.
    pub burst: NonZeroU32,
    /// The time in which one more call is allowed.
    pub replenish_every: Duration,
}

impl RateLimit {
    /// `per_second` calls per second, with bursts of as many.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self {
            burst: per_second,
            replenish_every: Duration::from_secs(1) / per_second.get(),
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::per_second(NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN))
    }
}

/// The limiter of one connector.
pub(crate) struct Limiter {
    inner: DefaultDirectRateLimiter,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let period = limit.replenish_every.max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(limit.burst);
        Self {
            inner: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn try_acquire(&self) -> bool {
        self.inner.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses() {
        let limiter = Limiter::new(RateLimit {
            burst: NonZeroU32::new(3).unwrap(),
            replenish_every: Duration::from_secs(3600),
        });
        assert!(limiter.try_acquire());
        assert!(limiter.try_acquire());
        assert!(limiter.try_acquire());
        assert!(!limiter.try_acquire());
    }
}
