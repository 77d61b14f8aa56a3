//! The actor one connector runs in: each request passes the circuit breaker
//! and the rate limiter, then runs with a timeout; its outcome feeds the
//! breaker. Metrics for breaker state and rate-limit hits are recorded here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use neonhub_events::ErrorKind;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::breaker::{BreakerState, CircuitBreaker};
use super::limiter::Limiter;
use super::{Connector, ConnectorOptions, StepRef};

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
}

/// Send one request (`operation` on `input`) of `step`.
pub(crate) struct Invoke {
    /// The step the request belongs to ([`Connector::call_step`]).
    pub(crate) step: StepRef,
    pub(crate) operation: String,
    pub(crate) input: Value,
    /// Cancelled when the calling attempt is cut off: the request is then
    /// dropped, or never sent if it has not started.
    pub(crate) cancel: CancellationToken,
}

impl Message for Invoke {
    type Result = Result<Value, Failure>;
}

/// Ask for the breaker's state.
pub(crate) struct Health;

impl Message for Health {
    type Result = BreakerState;
}

pub(crate) struct ConnectorActor {
    name: String,
    connector: Arc<dyn Connector>,
    timeout: Duration,
    breaker: CircuitBreaker,
    limiter: Limiter,
}

impl ConnectorActor {
    pub(crate) fn new(connector: Arc<dyn Connector>, options: &ConnectorOptions) -> Self {
        Self {
            name: connector.name().to_owned(),
            connector,
            timeout: options.timeout,
            breaker: CircuitBreaker::new(options.breaker),
            limiter: Limiter::new(options.rate_limit),
        }
    }

    fn report_state(&self) {
        let state = self.breaker.state(Instant::now());
        metrics::gauge!(BREAKER_STATE, "connector" => self.name.clone()).set(state.as_gauge());
    }
}

const BREAKER_STATE: &str = "neonhub_circuit_breaker_state";
const RATE_LIMIT_HITS: &str = "neonhub_rate_limit_hits_total";
const BREAKER_FAILURES: &str = "neonhub_circuit_breaker_failures_total";

/// Gives the connector metrics their `# HELP` text in the installed
/// recorder (`promtool check metrics` wants one on every family).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Each connector's circuit breaker: 0 closed, 1 open, 2 half-open."
    );
    metrics::describe_counter!(
        RATE_LIMIT_HITS,
        "Connector calls refused at once by the connector's rate limit."
    );
    metrics::describe_counter!(
        BREAKER_FAILURES,
        "Vendor failures (5xx, timeouts, connection errors) counted by each connector's circuit breaker."
    );
}

impl Actor for ConnectorActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.report_state();
    }
}

impl Supervised for ConnectorActor {}

impl Handler<Health> for ConnectorActor {
    type Result = MessageResult<Health>;

    fn handle(&mut self, _msg: Health, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.breaker.state(Instant::now()))
    }
}

impl Handler<Invoke> for ConnectorActor {
    type Result = ResponseActFuture<Self, Result<Value, Failure>>;

    fn handle(&mut self, msg: Invoke, _ctx: &mut Context<Self>) -> Self::Result {
        if msg.cancel.is_cancelled() {
            let failure = Failure {
                kind: ErrorKind::Cancelled,
                message: "the attempt was cut off before the request was sent".to_owned(),
                retryable: false,
                maybe_sent: false,
            };
            return Box::pin(actix::fut::ready(Err(failure)));
        }
        let now = Instant::now();
        if !self.breaker.try_acquire(now) {
            let failure = Failure {
                kind: ErrorKind::CircuitOpen,
                message: format!("the {} circuit breaker is open", self.name),
                retryable: false,
                maybe_sent: false,
            };
            return Box::pin(actix::fut::ready(Err(failure)));
        }
        if !self.limiter.try_acquire() {
            self.breaker.release();
            metrics::counter!(RATE_LIMIT_HITS, "connector" => self.name.clone()).increment(1);
            let failure = Failure {
                kind: ErrorKind::RateLimited,
                message: format!("the {} rate limit was hit", self.name),
                retryable: false,
                maybe_sent: false,
            };
            return Box::pin(actix::fut::ready(Err(failure)));
        }
        self.report_state();
        let connector = Arc::clone(&self.connector);
        let timeout = self.timeout;
        let request = async move {
            let call = tokio::time::timeout(
                timeout,
                connector.call_step(&msg.step, &msg.operation, &msg.input),
            );
            let answer = tokio::select! {
                answer = call => answer,
                () = msg.cancel.cancelled() => {
                    return Err(Failure {
                        kind: ErrorKind::Cancelled,
                        message: "the attempt was cut off while the request was on the wire"
                            .to_owned(),
                        retryable: false,
                        maybe_sent: true,
                    });
                }
            };
            match answer {
                Err(_) => Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: format!("no answer within {timeout:?}"),
                    retryable: true,
                    maybe_sent: true,
                }),
                Ok(Err(e)) => Err(Failure {
                    kind: ErrorKind::Connector,
                    retryable: e.is_retryable(),
                    maybe_sent: e.may_have_had_effect() && e.is_retryable(),
                    message: e.message().to_owned(),
                }),
                Ok(Ok(value)) => Ok(value),
            }
        };
        Box::pin(request.into_actor(self).map(|result, act, _ctx| {
            match &result {
                Err(f) if f.retryable => {
                    act.breaker.on_failure(Instant::now());
                    metrics::counter!(
                        BREAKER_FAILURES,
                        "connector" => act.name.clone()
                    )
                    .increment(1);
                }
                // Cut off by the caller: says nothing about the vendor.
                Err(f) if f.kind == ErrorKind::Cancelled => act.breaker.release(),
                _ => act.breaker.on_success(),
            }
            act.report_state();
            result
        }))
    }
}
