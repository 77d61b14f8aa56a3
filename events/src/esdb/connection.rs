//! The client and the runtime it lives on: the `kurrentdb` client is created
//! on a runtime the backend owns (so no gRPC task ever runs on a caller's
//! actix arbiter), and recreated with backoff when it dies — a client whose
//! first connection failed stays closed for good.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::esdb::error::client_is_dead;

/// The first wait before recreating a dead client; it doubles per failure.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// The longest wait between two client re-creations.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The backoff after `failures` consecutive dead clients.
pub(crate) fn backoff(failures: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX)
}

/// Owns the runtime; dropping the last store handle shuts it down without
/// blocking (safe inside another runtime), which also ends every
/// subscription task.
#[derive(Debug)]
pub(crate) struct RuntimeOwner(Option<tokio::runtime::Runtime>);

impl RuntimeOwner {
    pub(crate) fn new(threads: usize) -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("neonhub-esdb")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| Error::io("starting the EventStoreDB client runtime", e))
    }

    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("present until dropped")
            .handle()
            .clone()
    }
}

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Default)]
struct Slot {
    client: Option<(u64, kurrentdb::Client)>,
    generation: u64,
    failures: u32,
    next_attempt: Option<Instant>,
}

/// Hands out the current client, creating it when there is none (after the
/// backoff since the last one died).
pub(crate) struct Connection {
    settings: kurrentdb::ClientSettings,
    handle: tokio::runtime::Handle,
    slot: Mutex<Slot>,
}

impl Connection {
    pub(crate) fn new(settings: kurrentdb::ClientSettings, handle: tokio::runtime::Handle) -> Self {
        Self {
            settings,
            handle,
            slot: Mutex::new(Slot::default()),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current client and its generation, waiting out the backoff if
    /// the last one died recently.
    pub(crate) async fn client(&self) -> Result<(u64, kurrentdb::Client)> {
        loop {
            let wait = {
                let mut slot = self.slot();
                if let Some(c) = &slot.client {
                    return Ok(c.clone());
                }
                let now = Instant::now();
                match slot.next_attempt {
                    Some(at) if at > now => at - now,
                    _ => {
                        let client = kurrentdb::Client::with_runtime_handle(
                            self.handle.clone(),
                            self.settings.clone(),
                        )
                        .map_err(|e| {
                            let failures = slot.failures + 1;
                            slot.failures = failures;
                            slot.next_attempt = Some(now + backoff(failures));
                            Error::Backend {
                                message: format!("cannot create the EventStoreDB client: {e}"),
                                retryable: true,
                            }
                        })?;
                        slot.generation += 1;
                        let current = (slot.generation, client);
                        slot.client = Some(current.clone());
                        return Ok(current);
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Forgets the client of `generation` (if still current) so the next
    /// call creates a new one after the backoff.
    pub(crate) fn dead(&self, generation: u64) {
        let mut slot = self.slot();
        if slot.client.as_ref().is_some_and(|(g, _)| *g == generation) {
            slot.client = None;
            slot.failures += 1;
            slot.next_attempt = Some(Instant::now() + backoff(slot.failures));
            tracing::warn!(
                failures = slot.failures,
                "EventStoreDB client lost its connection; recreating it"
            );
        }
    }

    /// Resets the backoff after a call went through.
    fn alive(&self) {
        let mut slot = self.slot();
        if slot.failures != 0 {
            slot.failures = 0;
            slot.next_attempt = None;
        }
    }

    /// Runs `op` with the current client. When the client turns out dead
    /// (no request reached a server), it is recreated and `op` runs once
    /// more, so one failed connection attempt is invisible to the caller.
    pub(crate) async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, CallError>
    where
        F: FnMut(kurrentdb::Client) -> Fut,
        Fut: Future<Output = kurrentdb::Result<T>>,
    {
        let mut retried = false;
        loop {
            let (generation, client) = self.client().await.map_err(CallError::Ours)?;
            match op(client).await {
                Ok(v) => {
                    self.alive();
                    return Ok(v);
                }
                Err(e) if client_is_dead(&e) => {
                    self.dead(generation);
                    if retried {
                        return Err(CallError::Client(e));
                    }
                    retried = true;
                }
                Err(e) => return Err(CallError::Client(e)),
            }
        }
    }
}

/// A failed [`Connection::call`]: the client's error, or ours.
#[derive(Debug)]
pub(crate) enum CallError {
    Client(kurrentdb::Error),
    Ours(Error),
}

/// Runs `fut` on the backend's runtime and waits for it from any runtime.
pub(crate) async fn on_runtime<T, Fut>(handle: &tokio::runtime::Handle, fut: Fut) -> Result<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    match handle.spawn(fut).await {
        Ok(r) => r,
        // The runtime was shut down: the store handle is gone.
        Err(e) if e.is_cancelled() => Err(Error::Closed),
        Err(e) => Err(Error::Backend {
            message: format!("an EventStoreDB task failed: {e}"),
            retryable: false,
        }),
    }
}

/// What a shared connection looks like to the store and its subscriptions.
pub(crate) type SharedConnection = Arc<Connection>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), BACKOFF_START);
        assert_eq!(backoff(1), BACKOFF_START * 2);
        assert_eq!(backoff(3), BACKOFF_START * 8);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
