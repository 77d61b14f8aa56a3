//! Retry policies: how many attempts a run gets and how long to wait
//! between them (exponential backoff with jitter).

use std::time::Duration;

use neonhub_events::Timestamp;
use rand::Rng;

/// Waits until `at` (wall-clock, as `RunFailed.retry_at` records it), or
/// until `cancelled` completes, whichever comes first.
pub(crate) async fn wait_until(at: Timestamp, cancelled: impl Future<Output = ()>) {
    let left = Duration::from_micros(at.0.saturating_sub(Timestamp::now().0));
    tokio::select! {
        () = tokio::time::sleep(left) => {}
        () = cancelled => {}
    }
}

/// How often a failed attempt is tried again, and after how long.
///
/// Attempt `n` (1-based) that fails with a retryable error is followed by
/// attempt `n + 1` after `initial_backoff * multiplier^(n-1)`, capped at
/// `max_backoff`, then scaled by a random factor in `[1 - jitter, 1]`
/// so that many runs failing together do not retry in lock step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// The growth of the wait from one attempt to the next.
    pub multiplier: f64,
    /// The fraction (0 to 1) of each wait that is random.
    pub jitter: f64,
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub const fn none() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }

    /// `max_attempts` attempts with backoff starting at `initial_backoff`,
    /// doubling up to 10 s, half of it jitter.
    pub const fn attempts(max_attempts: u32, initial_backoff: Duration) -> Self {
        Self {
            max_attempts,
            initial_backoff,
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }

    /// Whether attempt `attempt` (1-based) may be followed by another.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1-based), jitter applied.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.backoff_ceiling(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 || base.is_zero() {
            return base;
        }
        let factor = 1.0 - rand::rng().random_range(0.0..=jitter);
        base.mul_f64(factor)
    }

    /// The wait after failed attempt `attempt` before jitter.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = secs.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(capped.max(0.0))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: 0.0,
        };
        let waits: Vec<_> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_varies() {
        let policy = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::attempts(3, Duration::from_millis(1000))
        };
        let waits: Vec<_> = (0..200).map(|_| policy.backoff(2)).collect();
        for w in &waits {
            assert!(*w >= Duration::from_millis(1000) && *w <= Duration::from_millis(2000));
        }
        let first = waits[0];
        assert!(waits.iter().any(|w| *w != first), "jitter never varied");
    }

    #[test]
    fn retries_are_allowed_until_the_last_attempt() {
        let policy = RetryPolicy::attempts(3, Duration::ZERO);
        assert!(policy.allows_retry_after(1));
        assert!(policy.allows_retry_after(2));
        assert!(!policy.allows_retry_after(3));
        assert!(!RetryPolicy::none().allows_retry_after(1));
    }
}
