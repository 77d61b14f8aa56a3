//! The run events: `RunStarted`, `RunSucceeded`, `RunFailed`, and their
//! versioned type names (the one place those names are written).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{NodeId, RunId, Timestamp};

/// The versioned type names of neonhub's events. An additive change keeps the
/// name (new fields use `#[serde(default)]`); a breaking change gets a new
/// name here and an upcaster from the old one (see [`crate::Codec`]).
pub mod event_types {
    /// [`super::RunStarted`].
    pub const RUN_STARTED: &str = "run.started.v1";
    /// [`super::RunSucceeded`].
    pub const RUN_SUCCEEDED: &str = "run.succeeded.v1";
    /// [`super::RunFailed`].
    pub const RUN_FAILED: &str = "run.failed.v1";
    /// [`super::StepResolved`].
    pub const STEP_RESOLVED: &str = "step.resolved.v1";
    /// [`crate::LeaseRenewed`], in a node's lease stream (not a run event).
    pub const LEASE_RENEWED: &str = "lease.renewed.v1";
}

/// What ran: an agent, or a connector called by an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// An agent run, submitted by a client.
    Agent,
    /// A connector call, a child run of an agent run.
    Connector,
}

impl RunKind {
    /// The lower-case name (`agent`, `connector`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RunKind::Agent => "agent",
            RunKind::Connector => "connector",
        }
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The attempt took longer than its timeout.
    Timeout,
    /// The agent panicked; its actor was restarted.
    Panicked,
    /// The agent returned an error.
    Agent,
    /// A connector call failed.
    Connector,
    /// The connector's circuit breaker was open.
    CircuitOpen,
    /// The connector's rate limit was hit.
    RateLimited,
    /// The process stopped while the run was in flight; recovery closed it.
    Interrupted,
    /// The run was refused (bad input for the agent, shutting down).
    Rejected,
    /// A step that is not safe to repeat may or may not have reached the
    /// vendor (a timeout, reset or server error while its request was on
    /// the wire, or a crash). It is never resent automatically.
    InDoubt,
    /// The attempt was cut off (its timeout, or a cancellation) before this
    /// step's request left: it had no effect.
    Cancelled,
}

impl ErrorKind {
    /// The snake_case name used in the audit table, metrics and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Agent => "agent",
            ErrorKind::Connector => "connector",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Rejected => "rejected",
            ErrorKind::InDoubt => "in_doubt",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Every kind, for exhaustive tests and documentation.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Timeout,
        ErrorKind::Panicked,
        ErrorKind::Agent,
        ErrorKind::Connector,
        ErrorKind::CircuitOpen,
        ErrorKind::RateLimited,
        ErrorKind::Interrupted,
        ErrorKind::Rejected,
        ErrorKind::InDoubt,
        ErrorKind::Cancelled,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attempt of a run began. The first one is appended at `NoStream`.
///
/// `J` is how the input is held: a [`Value`] tree, or its text
/// ([`crate::JsonText`], for readers that only compare or show it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStarted<J = Value> {
    /// The run.
    pub run_id: RunId,
    /// Agent or connector.
    pub kind: RunKind,
    /// The agent or connector name (`email`, `gmail`).
    pub target: String,
    /// What it was asked to do (`run` for agents; `send`, `post_message`, ...
    /// for connectors).
    pub operation: String,
    /// The intent the run was routed by, if any (`email.send`).
    #[serde(default)]
    pub intent: Option<String>,
    /// The input, as JSON. Never holds credentials.
    pub input: J,
    /// 1 for the first attempt, n+1 for a retry.
    pub attempt: u32,
    /// The agent run that made this connector call.
    #[serde(default)]
    pub parent_run_id: Option<RunId>,
    /// The root request every run of one piece of work shares.
    pub correlation_id: Uuid,
    /// When the attempt began.
    pub started_at: Timestamp,
    /// For a run submitted under a client-chosen id (an idempotency key):
    /// the [`request_digest`] of its target and input, so that the same id
    /// with another request is refused. First attempt only; absent in logs
    /// written before it existed, where the recorded target and input are
    /// digested instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
    /// For a connector call: its step key within the calling run
    /// (`notify-owner`, or `twilio.send_sms#1` by default). The run id of a
    /// step is derived from the parent's run id and this key, so a retried
    /// or resumed attempt finds the step's record again. First attempt only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// This attempt resumes a run that a stopped process left unfinished
    /// (start-up recovery); false, and absent from the payload, otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// The node executing this attempt, which owns the run until the run
    /// ends or another node resumes it (`--node-id`; see
    /// [`crate::LeaseRenewed`]). Absent on the embedded store (one process
    /// owns every run) and in logs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// How long the run was not executing before this attempt began: for a
    /// resume, from the last event the stopped process recorded for the run
    /// (or its steps) to this start; for a run resumed after an operator
    /// resolved its step, the wait for that decision. Excluded from the
    /// run's duration. 0, and absent from the payload, otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_micros: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The SHA-256, in lower-case hex, of a request: `target`, a zero byte, and
/// `input` as JSON. `serde_json`'s maps are ordered by key, so two inputs
/// that are equal as JSON have one digest whatever order their keys came in.
pub fn request_digest(target: &str, input: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(target.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(input).expect("a JSON value serializes"));
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The run finished successfully (terminal). `J` as for [`RunStarted`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSucceeded<J = Value> {
    /// The run.
    pub run_id: RunId,
    /// The attempt that succeeded.
    pub attempt: u32,
    /// The result, as JSON.
    pub output: J,
    /// How long the attempt took, in microseconds.
    pub duration_micros: u64,
    /// When it finished.
    pub finished_at: Timestamp,
}

/// An attempt failed: terminal unless `will_retry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFailed {
    /// The run.
    pub run_id: RunId,
    /// The attempt that failed.
    pub attempt: u32,
    /// Why.
    pub error: RunError,
    /// Whether another `RunStarted` attempt follows.
    pub will_retry: bool,
    /// With `will_retry`: the earliest time the next attempt begins (the
    /// backoff, or a vendor's longer `Retry-After`), so that a run resumed
    /// after a crash still waits for it. `None` in events written before
    /// the field existed (the next attempt then begins at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    /// How long the attempt took, in microseconds.
    pub duration_micros: u64,
    /// When it failed.
    pub finished_at: Timestamp,
}

impl RunFailed {
    /// With `will_retry`, when the next attempt is due: `retry_at`, or at
    /// once (the failure's own time) in a log written before that field.
    /// `None` for a terminal failure.
    pub fn retry_due(&self) -> Option<Timestamp> {
        self.will_retry
            .then(|| self.retry_at.unwrap_or(self.finished_at))
    }
}

/// A typed run failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// A human-readable message, never holding credentials.
    pub message: String,
}

impl RunError {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What an operator found out about a step left `in_doubt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The vendor did it: the step counts as succeeded and is not sent again.
    Sent,
    /// The vendor never got it: the step is executed again when its run resumes.
    NotSent,
}

impl StepOutcome {
    /// `sent` or `not_sent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Sent => "sent",
            StepOutcome::NotSent => "not_sent",
        }
    }
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator settled a step that ended `in_doubt` (a connector run): it
/// follows the step's `RunFailed{in_doubt}` in the step's own stream.
/// `Sent` ends the step as succeeded; `NotSent` reopens it, and the next
/// `RunStarted` executes it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResolved {
    /// The step's run (the connector run, not its parent).
    pub run_id: RunId,
    /// The step's key within its parent run.
    pub step: String,
    /// What the operator found.
    pub outcome: StepOutcome,
    /// Who decided (an operator's name, as given to the CLI or the API).
    pub decided_by: String,
    /// Why, if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the decision was recorded.
    pub decided_at: Timestamp,
}

impl StepResolved {
    /// What a replayed `Sent` step returns to its agent: the operator's
    /// decision, since the vendor's own answer was never received.
    pub fn output(&self) -> Value {
        serde_json::json!({
            "resolved": self.outcome.as_str(),
            "decided_by": self.decided_by,
            "reason": self.reason,
        })
    }
}

/// Any event of a run stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunEvent {
    /// See [`RunStarted`].
    Started(RunStarted),
    /// See [`RunSucceeded`].
    Succeeded(RunSucceeded),
    /// See [`RunFailed`].
    Failed(RunFailed),
    /// See [`StepResolved`].
    StepResolved(StepResolved),
}

impl RunEvent {
    /// The versioned type name this event is stored under.
    pub const fn event_type(&self) -> &'static str {
        match self {
            RunEvent::Started(_) => event_types::RUN_STARTED,
            RunEvent::Succeeded(_) => event_types::RUN_SUCCEEDED,
            RunEvent::Failed(_) => event_types::RUN_FAILED,
            RunEvent::StepResolved(_) => event_types::STEP_RESOLVED,
        }
    }

    /// The run this event belongs to.
    pub const fn run_id(&self) -> RunId {
        match self {
            RunEvent::Started(e) => e.run_id,
            RunEvent::Succeeded(e) => e.run_id,
            RunEvent::Failed(e) => e.run_id,
            RunEvent::StepResolved(e) => e.run_id,
        }
    }

    /// Whether this event ends its run. Only a run that ended `in_doubt`
    /// has events after its terminal one: an operator's [`StepResolved`]
    /// (on a step), or the `RunStarted` that resumes it (on an agent run).
    pub const fn is_terminal(&self) -> bool {
        match self {
            RunEvent::Started(_) => false,
            RunEvent::Succeeded(_) => true,
            RunEvent::Failed(e) => !e.will_retry,
            RunEvent::StepResolved(e) => matches!(e.outcome, StepOutcome::Sent),
        }
    }
}

/// What a language-model call used, read from its step's output: the
/// `llm` connector's `chat` answers `{model, content, input_tokens,
/// output_tokens, cost_usd, finish_reason}`, and any connector whose output
/// carries those four fields is counted the same way. The AgentRun table's
/// `model`, `input_tokens`, `output_tokens` and `cost_usd` columns and the
/// `neonhub_llm_*` metrics are derived from it, so they equal the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    /// The model that answered (as the vendor named it).
    pub model: String,
    /// Tokens of the prompt.
    pub input_tokens: u64,
    /// Tokens of the answer.
    pub output_tokens: u64,
    /// What the call cost, in US dollars, from the connector's price table
    /// (0 for a model without a price).
    pub cost_usd: f64,
}

impl Usage {
    /// The usage `output` reports: a JSON object with a string `model`,
    /// non-negative integers `input_tokens` and `output_tokens`, and a
    /// non-negative number `cost_usd`; `None` for any other output.
    pub fn from_output(output: &Value) -> Option<Usage> {
        let model = output.get("model")?.as_str()?;
        let input_tokens = output.get("input_tokens")?.as_u64()?;
        let output_tokens = output.get("output_tokens")?.as_u64()?;
        let cost_usd = output.get("cost_usd")?.as_f64()?;
        if !(cost_usd >= 0.0 && cost_usd.is_finite()) {
            return None;
        }
        Some(Usage {
            model: model.to_owned(),
            input_tokens,
            output_tokens,
            cost_usd,
        })
    }

    /// The cost in billionths of a dollar (rounded), how the metrics add
    /// costs up exactly.
    pub fn cost_nano_usd(&self) -> u64 {
        (self.cost_usd * 1e9).round() as u64
    }
}

#[cfg(test)]
mod usage_tests {
    use serde_json::json;

    use super::Usage;

    #[test]
    fn usage_is_read_from_an_llm_output_only() {
        let output = json!({"model": "gpt-4o-mini", "content": "hi", "input_tokens": 12,
            "output_tokens": 3, "cost_usd": 0.0000036, "finish_reason": "stop"});
        let usage = Usage::from_output(&output).unwrap();
        assert_eq!(usage.model, "gpt-4o-mini");
        assert_eq!((usage.input_tokens, usage.output_tokens), (12, 3));
        assert_eq!(usage.cost_nano_usd(), 3600);
        assert_eq!(Usage::from_output(&json!({"sid": "SM1"})), None);
        assert_eq!(
            Usage::from_output(&json!({"model": "m", "input_tokens": -1,
                "output_tokens": 1, "cost_usd": 0})),
            None
        );
    }
}
