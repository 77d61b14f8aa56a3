//! Waiting on conditions, never with fixed sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a condition may take, by default, before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `condition` (with a pause growing to 100 ms) until it holds;
/// panics naming `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(what, PATIENCE, Duration::from_millis(100), condition).await;
}

/// Polls `condition` every few milliseconds (5 at most) until it holds;
/// panics naming `what` after `limit`.
pub async fn wait_until_within<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(what, limit, Duration::from_millis(5), condition).await;
}

async fn poll<F, Fut>(what: &str, limit: Duration, longest_pause: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(longest_pause);
    }
}
