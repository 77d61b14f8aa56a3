//! Connectors: the `Connector` trait, their errors, options and modes, the
//! supervised actor each runs in (breaker, rate limit, timeout), the child
//! runs that record every call, and how a call in doubt is looked up again
//! ([`StepRef`], [`Reconciled`]). Gmail, Slack, Twilio and a language
//! model (`llm`) are built in.

mod actor;
mod breaker;
mod call;
mod clock;
mod config;
mod gmail;
mod http;
mod limiter;
mod llm;
mod mail;
mod mock;
mod redact;
mod slack;
mod twilio;
mod vendor;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_events::{ErrorKind, RunId, Timestamp};
use serde_json::Value;

use crate::retry::RetryPolicy;

pub use actor::describe_metrics as describe_connector_metrics;
pub(crate) use actor::{ConnectorActor, Guard};
pub use breaker::{BreakerConfig, BreakerState};
pub(crate) use call::{ConnectorEntry, Runtime, Step};
pub use clock::{Clock, ManualClock};
pub use config::{
    ConnectorMode, ConnectorsConfig, GmailConfig, GmailRefresh, LlmConfig, LlmPrice, LlmProvider,
    Secret, SlackConfig, TwilioConfig,
};
pub use gmail::Gmail;
pub(crate) use limiter::vendor_limits;
pub use limiter::{
    ConnectorLimits, DEFAULT_MAX_WAITING, Limit, RateLimit, RateLimitsConfig, rate_limit_waits,
};
pub use llm::Llm;
pub use slack::Slack;
pub use twilio::Twilio;
pub use vendor::{LlmError, Retry, SlackError, TwilioError, VendorCode};

/// A service agents call: Gmail, Slack, Twilio, or one of your own.
///
/// Each registered connector runs in its own actor with a circuit breaker, a
/// rate limiter, a timeout and retries (see [`ConnectorOptions`]); every call
/// is recorded as a child run of the calling agent run. Only [`Self::name`]
/// and [`Self::call`] are required; a connector whose sends can be found
/// again at the vendor also implements [`Self::call_step`] (to mark them)
/// and [`Self::reconcile`] (to look them up).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connector's name (`gmail`), the `target` of its runs.
    fn name(&self) -> &str;

    /// Performs `operation` on `input`. The input is recorded in the run's
    /// events, so it must never hold credentials: those live in the connector.
    async fn call(&self, operation: &str, input: &Value) -> Result<Value, ConnectorError>;

    /// Performs `operation` on `input` as `step`: what every agent's call
    /// goes through. A connector that can mark what it sends with the step
    /// (Gmail: a `Message-ID` derived from it; Slack: message metadata)
    /// does so here, so that [`Self::reconcile`] can find it again. By
    /// default, [`Self::call`].
    async fn call_step(
        &self,
        step: &StepRef,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ConnectorError> {
        let _ = step;
        self.call(operation, input).await
    }

    /// Looks `step` up at the vendor, after its request (`operation` on
    /// `input`, as recorded) may have reached it and its outcome is unknown
    /// (a timeout, a reset, a server error, a crash). Asked only for
    /// operations that are not safe to repeat, and within the connector's
    /// timeout. [`Reconciled::Found`] with what [`Self::call`] would have
    /// answered records the step as succeeded; otherwise it ends `in_doubt`.
    /// Never sends anything with an effect; a failure to look is
    /// [`Reconciled::Unchecked`]. By default, unchecked.
    async fn reconcile(&self, step: &StepRef, operation: &str, input: &Value) -> Reconciled {
        let _ = (step, input);
        Reconciled::Unchecked(format!(
            "the {} connector cannot look up a {operation} it may have made",
            self.name()
        ))
    }

    /// Whether doing `operation` twice is harmless (a read: get a profile,
    /// list, look up a status). Only such operations are sent again after a
    /// timeout, a reset or a server error, or when their step is found in
    /// doubt; for any other operation, a failure that may have reached the
    /// vendor is looked up ([`Self::reconcile`]) and, unless the vendor has
    /// it, ends the step `in_doubt`. `false` unless the connector says
    /// otherwise.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        let _ = operation;
        false
    }

    /// The key the vendor counts `operation` on `input` against, where it
    /// limits per key (Twilio: the sending number; Slack: the channel;
    /// Gmail: the user): calls with one key share
    /// [`ConnectorOptions::key_rate_limit`]. `None` (the default): only the
    /// connector's limit applies.
    fn limit_key(&self, operation: &str, input: &Value) -> Option<String> {
        let _ = (operation, input);
        None
    }

    /// The tokens `operation` on `input` is expected to use, charged to
    /// [`ConnectorOptions::token_limit`] before it is sent (the `llm`
    /// connector: `max_tokens` plus a quarter of the prompt's characters).
    /// `None` (the default): the call is not charged.
    fn estimated_tokens(&self, operation: &str, input: &Value) -> Option<u64> {
        let _ = (operation, input);
        None
    }

    /// The endpoint group `operation` belongs to, where the vendor has
    /// several that fail apart (Twilio: `messages` and `lookup`): each group
    /// has its own circuit breaker. One group (`api`) by default.
    fn endpoint_group(&self, operation: &str) -> &'static str {
        let _ = operation;
        "api"
    }
}

/// The step a request belongs to, handed to [`Connector::call_step`] and
/// [`Connector::reconcile`]: the same for every request of the step, in
/// every attempt and after a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRef {
    /// The step's key within its run (`notify-owner`, `gmail.send#1`).
    pub key: String,
    /// The step's child run id, derived from the parent run id and the key:
    /// unique to this step, so a mark to find its request again.
    pub run_id: RunId,
    /// When the step's first attempt started (its first `RunStarted`): no
    /// request of the step reached the vendor before.
    pub started_at: Timestamp,
}

/// What the vendor says about a step whose outcome is unknown
/// ([`Connector::reconcile`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Reconciled {
    /// The vendor has it: the output the call would have answered (the step
    /// is recorded as succeeded with it).
    Found(Value),
    /// The vendor was asked and has no record of it. The step still ends
    /// `in_doubt`: a vendor's search may lag behind its sends.
    NotFound,
    /// The vendor could not be asked, or its answer cannot settle it: why
    /// (never holding credentials). The step ends `in_doubt`.
    Unchecked(String),
}

impl Reconciled {
    /// `live`, the live backend of `connector`, if a step's `operation` can
    /// be looked up there; else why not: its mock (`live` is `None`) sends
    /// nothing, and only the `lookable` operation leaves a mark the vendor
    /// can be searched for.
    pub(crate) fn lookable<L>(
        connector: &str,
        live: Option<L>,
        operation: &str,
        lookable: &str,
    ) -> Result<L, Reconciled> {
        let why = match live {
            None => format!("the {connector} mock sends nothing, so there is nothing to look up"),
            Some(_) if operation != lookable => format!("{connector} cannot look up a {operation}"),
            Some(live) => return Ok(live),
        };
        Err(Reconciled::Unchecked(why))
    }
}

/// A failed connector call, as the connector reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorError {
    message: String,
    retryable: bool,
    not_sent: bool,
    vendor: Option<VendorCode>,
    /// The vendor paced us (a 429): not its failure.
    throttled: bool,
    /// How long the vendor asked us to wait (`Retry-After`).
    retry_after: Option<Duration>,
}

impl ConnectorError {
    /// A failure that will not go away by trying again (bad input, 4xx).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            not_sent: true,
            vendor: None,
            throttled: false,
            retry_after: None,
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
            vendor: None,
            throttled: false,
            retry_after: None,
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
            vendor: None,
            throttled: false,
            retry_after: None,
        }
    }

    /// The vendor paces us (HTTP 429, Slack's `ratelimited`): not sent,
    /// retried no sooner than `retry_after` if it says, and never counted
    /// by the circuit breaker (the vendor is up).
    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            throttled: true,
            retry_after,
            ..Self::not_sent(message)
        }
    }

    /// The same error, to be retried no sooner than `retry_after` (a 503's
    /// `Retry-After`).
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// How long the vendor asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the vendor paced us (a 429) rather than failed.
    pub fn is_throttled(&self) -> bool {
        self.throttled
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

    /// The vendor's own error code, when it answered one (Slack's
    /// `channel_not_found`, Twilio's 21211).
    pub fn vendor(&self) -> Option<&VendorCode> {
        self.vendor.as_ref()
    }

    /// This error, carrying the vendor's code.
    pub(crate) fn with_vendor(mut self, code: VendorCode) -> Self {
        self.vendor = Some(code);
        self
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

    /// `connector`, `circuit_open`, `rate_limited`, `timeout`, `panicked`
    /// or `in_doubt`.
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
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorOptions {
    /// The longest one request may take; it then fails (retryably) with
    /// `timeout`. Also the longest looking a step in doubt up may take.
    pub timeout: Duration,
    /// Attempts and backoff for retryable failures, recorded in the child run.
    pub retry: RetryPolicy,
    /// When to stop calling a failing service for a while (one breaker per
    /// [`Connector::endpoint_group`]).
    pub breaker: BreakerConfig,
    /// How many calls of the whole connector may be made how fast (`None`:
    /// no limit). A call over it waits for its turn, up to its run's
    /// deadline.
    pub rate_limit: Option<RateLimit>,
    /// How many calls with one [`Connector::limit_key`] may be made how
    /// fast (`None`: no limit per key).
    pub key_rate_limit: Option<RateLimit>,
    /// Calls that may wait for a rate-limit permit at once; one more fails
    /// `rate_limited` at once, so waiting never holds unbounded memory.
    pub max_waiting: usize,
    /// The time the breakers count their cool-downs in: the real clock
    /// (the default), or a [`ManualClock`] a test moves forward.
    pub clock: Clock,
    /// A budget of tokens each call is charged its
    /// [`Connector::estimated_tokens`] from (a language model's tokens per
    /// minute: [`RateLimit::per_minute_whole`]); `None`: no budget.
    pub token_limit: Option<RateLimit>,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::attempts(3, Duration::from_millis(200)),
            breaker: BreakerConfig::default(),
            rate_limit: None,
            key_rate_limit: None,
            max_waiting: DEFAULT_MAX_WAITING,
            clock: Clock::real(),
            token_limit: None,
        }
    }
}

/// A `Retry-After` header's wait (RFC 9110 §10.2.3): delay seconds, or an
/// HTTP date (`now` is the time to count from; a date past is no wait).
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::parse_retry_after;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date past is no wait"
        );
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
