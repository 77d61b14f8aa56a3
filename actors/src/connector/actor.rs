//! The guard every request of one connector passes, in the calling step's
//! task: the rate limits (waiting for a permit up to the run's deadline),
//! the circuit breaker of the operation's endpoint group, then the call with
//! a timeout, a panic caught and turned into a `panicked` failure (the
//! connector's supervised actor restarts and counts it, later calls go on);
//! and that actor, which answers its breaker's health. Metrics for breaker
//! state, rate-limit waits and refusals, and restarts are recorded here.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use neonhub_events::ErrorKind;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Ticket};
use super::limiter::{Limiter, Refused, WAIT_SECONDS, WAITING};
use super::{Clock, Connector, ConnectorOptions, StepRef};

/// One request failed: the kind recorded in the child run and whether the
/// child run may try again.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) retryable: bool,
    /// The request may have reached the vendor (a timeout or a reset while
    /// it was on the wire, a server error).
    pub(crate) maybe_sent: bool,
    /// The vendor asked us to wait this long before trying again
    /// (`Retry-After` on a 429 or a 503).
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    fn new(kind: ErrorKind, message: String, retryable: bool, maybe_sent: bool) -> Self {
        Self {
            kind,
            message,
            retryable,
            maybe_sent,
            retry_after: None,
        }
    }

    /// The failure as a step records it.
    pub(crate) fn run_error(&self) -> neonhub_events::RunError {
        neonhub_events::RunError::new(self.kind, self.message.clone())
    }

    /// The failure as the step's caller gets it, once `run_id` recorded it.
    pub(crate) fn into_call_error(self, run_id: neonhub_events::RunId) -> super::CallError {
        super::CallError::new(Some(run_id), self.kind, self.message, self.retryable)
    }
}

/// A request that never left: its attempt was cut off first.
fn cut_off() -> Failure {
    Failure::new(
        ErrorKind::Cancelled,
        "the attempt was cut off before the request was sent".to_owned(),
        false,
        false,
    )
}

/// One request (`operation` on `input`) of `step`, sent through the
/// connector's [`Guard`] by the step's own task (so the caller going away
/// never drops a request on the wire).
pub(crate) struct Request<'a> {
    /// The step the request belongs to ([`Connector::call_step`]).
    pub(crate) step: &'a StepRef,
    pub(crate) operation: &'a str,
    pub(crate) input: &'a Value,
    /// Cancelled when the calling attempt is cut off: the request is then
    /// dropped, or never sent if it has not started.
    pub(crate) cancel: &'a CancellationToken,
}

/// Ask for the breaker's state (the most open of its endpoint groups).
pub(crate) struct Health;

impl Message for Health {
    type Result = BreakerState;
}

/// Restart the actor (sent by a request whose connector call panicked).
pub(crate) struct Restart;

impl Message for Restart {
    type Result = ();
}

/// What every request of one connector passes; shared by the actor and its
/// request tasks, and kept across restarts (it describes the vendor, not
/// the actor).
pub(crate) struct Guard {
    name: String,
    connector: Arc<dyn Connector>,
    timeout: Duration,
    breaker: BreakerConfig,
    /// The time the breakers count in.
    clock: Clock,
    /// One breaker per endpoint group, made on first use, with the state
    /// its gauge was last set to.
    breakers: Mutex<HashMap<&'static str, (CircuitBreaker, Option<BreakerState>)>>,
    limiter: Limiter,
    /// Its series are made at its first request: by then the binary has
    /// installed its recorder.
    series: std::sync::Once,
}

/// How one request ended, for the breaker.
enum Verdict {
    /// The vendor answered: it is up.
    Healthy,
    /// The vendor failed (5xx, timeout, no connection).
    Failed,
    /// Says nothing about the vendor (cut off, paced with a 429, panicked).
    Neutral,
}

impl Guard {
    pub(crate) fn new(connector: Arc<dyn Connector>, options: &ConnectorOptions) -> Self {
        let name = connector.name().to_owned();
        Self {
            limiter: Limiter::new(
                &name,
                options.rate_limit,
                options.key_rate_limit,
                options.max_waiting,
            )
            .with_tokens(options.token_limit),
            name,
            connector,
            timeout: options.timeout,
            breaker: options.breaker,
            clock: options.clock.clone(),
            breakers: Mutex::default(),
            series: std::sync::Once::new(),
        }
    }

    fn breakers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<&'static str, (CircuitBreaker, Option<BreakerState>)>>
    {
        self.breakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most open state of the connector's breakers.
    fn health(&self) -> BreakerState {
        let now = self.clock.now();
        let rank = |s: BreakerState| match s {
            BreakerState::Open => 2,
            BreakerState::HalfOpen => 1,
            _ => 0,
        };
        self.breakers()
            .values()
            .map(|(b, _)| b.state(now))
            .max_by_key(|s| rank(*s))
            .unwrap_or(BreakerState::Closed)
    }

    /// Sets `group`'s gauge to `state` if it was last set to another one:
    /// a gauge keeps its value, and building its key on every call costs
    /// more than the call of a mock connector.
    fn report_state(
        &self,
        group: &'static str,
        state: BreakerState,
        reported: &mut Option<BreakerState>,
    ) {
        if *reported == Some(state) {
            return;
        }
        metrics::gauge!(BREAKER_STATE, "connector" => self.name.clone(), "group" => group)
            .set(state.as_gauge());
        *reported = Some(state);
    }

    /// Takes a ticket from `group`'s breaker, if it lets the call out.
    fn acquire(&self, group: &'static str) -> Option<Ticket> {
        let now = self.clock.now();
        let mut breakers = self.breakers();
        let (breaker, reported) = breakers
            .entry(group)
            .or_insert_with(|| (CircuitBreaker::new(self.breaker), None));
        let ticket = breaker.try_acquire(now);
        self.report_state(group, breaker.state(now), reported);
        ticket
    }

    fn judge(&self, group: &'static str, ticket: Ticket, verdict: Verdict) {
        let now = self.clock.now();
        let mut breakers = self.breakers();
        let Some((breaker, reported)) = breakers.get_mut(group) else {
            return;
        };
        match verdict {
            Verdict::Healthy => breaker.on_success(ticket),
            Verdict::Failed => {
                breaker.on_failure(ticket, now);
                metrics::counter!(
                    BREAKER_FAILURES,
                    "connector" => self.name.clone(),
                    "group" => group
                )
                .increment(1);
            }
            Verdict::Neutral => breaker.release(ticket),
        }
        self.report_state(group, breaker.state(now), reported);
    }

    fn refused(&self, message: String) -> Failure {
        metrics::counter!(RATE_LIMIT_HITS, "connector" => self.name.clone()).increment(1);
        Failure::new(ErrorKind::RateLimited, message, false, false)
    }

    /// Waits for the rate-limit permits of one request of `operation` on
    /// `input`, while they come before `deadline` and `cancel` is not
    /// cancelled. Nothing is sent: a step asks for its permits before it
    /// records its request as started, so a crash while it waits leaves no
    /// step that may have reached the vendor. [`Self::send`] then sends it.
    pub(crate) async fn admit(
        &self,
        operation: &str,
        input: &Value,
        cancel: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), Failure> {
        if cancel.is_cancelled() {
            return Err(cut_off());
        }
        self.series.call_once(|| {
            let name = self.name.clone();
            metrics::counter!(RESTARTS, "connector" => name.clone()).increment(0);
            metrics::gauge!(WAITING, "connector" => name).increment(0.0);
        });
        let key = self.connector.limit_key(operation, input);
        let tokens = self
            .connector
            .estimated_tokens(operation, input)
            .and_then(|n| std::num::NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)));
        match self
            .limiter
            .acquire(key.as_deref(), tokens, deadline, cancel)
            .await
        {
            Ok(_) => Ok(()),
            Err(Refused::Cancelled) => Err(cut_off()),
            Err(Refused::Deadline { wait }) => {
                let whose = key.map(|k| format!(" for {k}")).unwrap_or_default();
                let message = format!(
                    "the {} rate limit{whose} gives the next permit in {wait:?}, after the run's deadline",
                    self.name
                );
                Err(self.refused(message))
            }
            Err(Refused::Turn) => {
                let whose = key.map(|k| format!(" for {k}")).unwrap_or_default();
                let message = format!(
                    "the run's deadline came while the call queued for the {} rate limit{whose}",
                    self.name
                );
                Err(self.refused(message))
            }
            Err(Refused::Queue { waiting }) => {
                let message = format!(
                    "the {} rate limit already has {waiting} calls waiting, its bound",
                    self.name
                );
                Err(self.refused(message))
            }
        }
    }

    /// Sends one request [`Self::admit`] let through: the breaker, then the
    /// call; `true` with it if the connector panicked.
    pub(crate) async fn send(&self, msg: &Request<'_>) -> (Result<Value, Failure>, bool) {
        if msg.cancel.is_cancelled() {
            return (Err(cut_off()), false);
        }
        let group = self.connector.endpoint_group(msg.operation);
        let Some(ticket) = self.acquire(group) else {
            let message = format!("the {} circuit breaker ({group}) is open", self.name);
            return (
                Err(Failure::new(ErrorKind::CircuitOpen, message, false, false)),
                false,
            );
        };
        let timeout = self.timeout;
        let call = AssertUnwindSafe(tokio::time::timeout(
            timeout,
            self.connector.call_step(msg.step, msg.operation, msg.input),
        ))
        .catch_unwind();
        let answer = tokio::select! {
            answer = call => answer,
            () = msg.cancel.cancelled() => {
                self.judge(group, ticket, Verdict::Neutral);
                let failure = Failure::new(
                    ErrorKind::Cancelled,
                    "the attempt was cut off while the request was on the wire".to_owned(),
                    false,
                    true,
                );
                return (Err(failure), false);
            }
        };
        let (result, verdict, panicked) = match answer {
            Err(payload) => {
                let message = format!(
                    "the {} connector panicked in {}: {}",
                    self.name,
                    msg.operation,
                    crate::agent::panic_message(payload.as_ref())
                );
                tracing::error!(connector = %self.name, "{message}");
                let failure = Failure::new(ErrorKind::Panicked, message, false, false);
                (Err(failure), Verdict::Neutral, true)
            }
            Ok(Err(_)) => {
                let failure = Failure::new(
                    ErrorKind::Timeout,
                    format!("no answer within {timeout:?}"),
                    true,
                    true,
                );
                (Err(failure), Verdict::Failed, false)
            }
            Ok(Ok(Err(e))) if e.is_throttled() => {
                let failure = Failure {
                    retry_after: e.retry_after(),
                    ..Failure::new(ErrorKind::RateLimited, e.message().to_owned(), true, false)
                };
                (Err(failure), Verdict::Neutral, false)
            }
            Ok(Ok(Err(e))) => {
                let verdict = if e.is_retryable() {
                    Verdict::Failed
                } else {
                    Verdict::Healthy
                };
                let failure = Failure {
                    retry_after: e.retry_after(),
                    ..Failure::new(
                        ErrorKind::Connector,
                        e.message().to_owned(),
                        e.is_retryable(),
                        e.may_have_had_effect() && e.is_retryable(),
                    )
                };
                (Err(failure), verdict, false)
            }
            Ok(Ok(Ok(value))) => (Ok(value), Verdict::Healthy, false),
        };
        self.judge(group, ticket, verdict);
        (result, panicked)
    }
}

pub(crate) struct ConnectorActor {
    guard: Arc<Guard>,
    restarts: Arc<AtomicU64>,
}

impl ConnectorActor {
    pub(crate) fn new(guard: Arc<Guard>, restarts: Arc<AtomicU64>) -> Self {
        Self { guard, restarts }
    }
}

const BREAKER_STATE: &str = "neonhub_circuit_breaker_state";
const RATE_LIMIT_HITS: &str = "neonhub_rate_limit_hits_total";
const BREAKER_FAILURES: &str = "neonhub_circuit_breaker_failures_total";
const RESTARTS: &str = "neonhub_connector_restarts_total";

/// Gives the connector metrics their `# HELP` text in the installed
/// recorder (`promtool check metrics` wants one on every family).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Each connector's circuit breaker, per endpoint group: 0 closed, 1 open, 2 half-open."
    );
    metrics::describe_counter!(
        RATE_LIMIT_HITS,
        "Connector calls failed rate_limited: their permit would come after the run's deadline, or too many calls already waited."
    );
    metrics::describe_counter!(
        BREAKER_FAILURES,
        "Vendor failures (5xx, timeouts, connection errors) counted by each connector's circuit breaker, per endpoint group."
    );
    metrics::describe_histogram!(
        WAIT_SECONDS,
        metrics::Unit::Seconds,
        "How long each connector call waited for its rate-limit permits."
    );
    metrics::describe_gauge!(
        WAITING,
        "Connector calls waiting for a rate-limit permit now."
    );
    metrics::describe_counter!(
        RESTARTS,
        "Restarts of each connector's actor after a panic in a call."
    );
}

impl Actor for ConnectorActor {
    type Context = Context<Self>;
}

impl Supervised for ConnectorActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(RESTARTS, "connector" => self.guard.name.clone()).increment(1);
        tracing::warn!(
            connector = %self.guard.name,
            "connector actor restarted after a panic"
        );
    }
}

impl Handler<Health> for ConnectorActor {
    type Result = MessageResult<Health>;

    fn handle(&mut self, _msg: Health, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.guard.health())
    }
}

impl Handler<Restart> for ConnectorActor {
    type Result = ();

    fn handle(&mut self, _msg: Restart, ctx: &mut Context<Self>) {
        // Supervision restarts the actor; `restarting` counts it.
        ctx.stop();
    }
}
