//! Connectors: the `Connector` trait, their errors, options and modes, the
//! supervised actor each runs in (breaker, rate limit, timeout), and the
//! child runs that record every call. Gmail, Slack and Twilio are built in.

mod actor;
mod breaker;
mod call;
mod config;
mod gmail;
mod http;
mod limiter;
mod mock;
mod slack;
mod twilio;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_events::{ErrorKind, RunId};
use serde_json::Value;

use crate::retry::RetryPolicy;

pub(crate) use actor::ConnectorActor;
pub use breaker::{BreakerConfig, BreakerState};
pub(crate) use call::{ConnectorEntry, Runtime, Step};
pub use config::{ConnectorMode, ConnectorsConfig, GmailConfig, Secret, SlackConfig, TwilioConfig};
pub use gmail::Gmail;
pub use limiter::RateLimit;
pub use slack::Slack;
pub use twilio::Twilio;

/// A service agents call: Gmail, Slack, Twilio, or one of your own.
///
/// Each registered connector runs in its own actor with a circuit breaker, a
/// rate limiter, a timeout and retries (see [`ConnectorOptions`]); every call
/// is recorded as a child run of the calling agent run.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connector's name (`gmail`), the `target` of its runs.
    fn name(&self) -> &str;

    /// Performs `operation` on `input`. The input is recorded in the run's
    /// events, so it must never hold credentials: those live in the connector.
    async fn call(&self, operation: &str, input: &Value) -> Result<Value, ConnectorError>;

    /// Whether doing `operation` twice is harmless (a read: get a profile,
    /// list, look up a status). Only such operations are sent again after a
    /// timeout, a reset or a server error, or when their step is found in
    /// doubt; any other failure that may have reached the vendor ends the
    /// step `in_doubt`. `false` unless the connector says otherwise.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        let _ = operation;
        false
    }
}

/// A failed connector call, as the connector reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorError {
    message: String,
    retryable: bool,
    not_sent: bool,
}

impl ConnectorError {
    /// A failure that will not go away by trying again (bad input, 4xx).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            not_sent: true,
        }
    }

    /// A transient failure after the request may have reached the vendor (a
    /// reset, a 5xx): counted by the circuit breaker, and retried only for an
    /// operation that is safe to repeat; otherwise the step is `in_doubt`.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            not_sent: false,
        }
    }

    /// A transient failure that certainly had no effect (the connection was
    /// refused, the name did not resolve, a 429 or 503 asking to come back):
    /// retried with backoff whatever the operation.
    pub fn not_sent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            not_sent: true,
        }
    }

    /// What went wrong (never holding credentials).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether the request may have reached the vendor and had its effect.
    pub fn may_have_had_effect(&self) -> bool {
        !self.not_sent
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectorError {}

/// The failure of a connector call made through an
/// [`crate::AgentContext`]: the child run failed (its events say why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    run_id: Option<RunId>,
    kind: ErrorKind,
    message: String,
    retryable: bool,
}

impl CallError {
    pub(crate) fn new(
        run_id: Option<RunId>,
        kind: ErrorKind,
        message: impl Into<String>,
        retryable: bool,
    ) -> Self {
        Self {
            run_id,
            kind,
            message: message.into(),
            retryable,
        }
    }

    /// The child run that recorded the call, if it got as far as starting.
    pub fn run_id(&self) -> Option<RunId> {
        self.run_id
    }

    /// `connector`, `circuit_open`, `rate_limited`, `timeout` or `in_doubt`.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong (never holding credentials).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the calling agent may try its run again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for CallError {}

/// How calls to one connector are guarded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectorOptions {
    /// The longest one request may take; it then fails (retryably) with `timeout`.
    pub timeout: Duration,
    /// Attempts and backoff for retryable failures, recorded in the child run.
    pub retry: RetryPolicy,
    /// When to stop calling a failing service for a while.
    pub breaker: BreakerConfig,
    /// How many calls may be made how fast.
    pub rate_limit: RateLimit,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::attempts(3, Duration::from_millis(200)),
            breaker: BreakerConfig::default(),
            rate_limit: RateLimit::default(),
        }
    }
}

/// The string field `name` of `input`, or a permanent error naming it.
pub(crate) fn required_str<'a>(input: &'a Value, name: &str) -> Result<&'a str, ConnectorError> {
    input
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConnectorError::permanent(format!("the input needs a string field {name:?}"))
        })
}

/// A permanent error for an operation the connector does not have.
pub(crate) fn unknown_operation(connector: &str, operation: &str) -> ConnectorError {
    ConnectorError::permanent(format!("{connector} has no operation {operation:?}"))
}

/// Whether `id` is safe to put in a URL path segment as is.
pub(crate) fn is_path_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
