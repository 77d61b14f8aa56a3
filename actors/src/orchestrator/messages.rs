//! The messages the orchestrator answers: submitting runs, listing agents,
//! its load, connector health, subscriptions.

use std::sync::Arc;

use actix::prelude::*;
use neonhub_events::{Position, RunId};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::InFlight;
use crate::connector::BreakerState;
use crate::error::{Error, Result};
use crate::journal::RunOutcome;
use crate::recovery::Unfinished;
use crate::subscribe::{RunEventNotice, SubscriptionHandle};

/// What a run is routed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// The agent with this name.
    Agent(String),
    /// The agent that handles this intent.
    Intent(String),
}

/// Submit a run; the reply is its outcome once it has finished.
///
/// A run that ran and failed is `Ok` with a failed [`RunOutcome`]; `Err` means
/// it was not run (unknown target, overload) or could not be recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmitRun {
    /// The agent, by name or intent.
    pub target: Target,
    /// The agent's input (recorded in `RunStarted`: no credentials).
    pub input: Value,
    /// A client-chosen id: an idempotency key. A fresh UUID v7 if `None`.
    pub run_id: Option<RunId>,
    /// The root request this run belongs to; the run's own id if `None`.
    pub correlation_id: Option<Uuid>,
}

impl SubmitRun {
    /// A run of the agent named `agent`.
    pub fn agent(agent: impl Into<String>, input: Value) -> Self {
        Self {
            target: Target::Agent(agent.into()),
            input,
            run_id: None,
            correlation_id: None,
        }
    }

    /// A run of the agent that handles `intent`.
    pub fn intent(intent: impl Into<String>, input: Value) -> Self {
        Self {
            target: Target::Intent(intent.into()),
            input,
            run_id: None,
            correlation_id: None,
        }
    }

    /// Uses `run_id` (an idempotency key) instead of a fresh id.
    pub fn with_run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Joins the run to an existing piece of work.
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }
}

impl Message for SubmitRun {
    type Result = Result<RunOutcome>;
}

/// Submit a run, and be answered as soon as its `RunStarted` is durable
/// (or the run was refused) with a [`RunTicket`] to await its outcome.
/// The run goes to its end whether or not the ticket is awaited.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRun(pub SubmitRun);

impl Message for StartRun {
    type Result = Result<RunTicket>;
}

/// A run whose `RunStarted` is durable (or, for a resubmitted run id, that
/// the log already holds): await [`RunTicket::outcome`] for how it ends.
#[derive(Debug)]
pub struct RunTicket {
    run_id: RunId,
    outcome: oneshot::Receiver<Result<RunOutcome>>,
}

impl RunTicket {
    pub(crate) fn new(run_id: RunId, outcome: oneshot::Receiver<Result<RunOutcome>>) -> Self {
        Self { run_id, outcome }
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Waits for the run's outcome.
    ///
    /// # Errors
    /// As [`SubmitRun`]'s reply; [`Error::Stopped`] if the orchestrator's
    /// arbiter stopped before the run ended.
    pub async fn outcome(self) -> Result<RunOutcome> {
        self.outcome.await.map_err(|_| Error::Stopped)?
    }

    /// Waits for the outcome through a `&mut` (for `select!`/timeouts that
    /// must be able to give up and keep the run going).
    ///
    /// # Errors
    /// As [`RunTicket::outcome`].
    pub async fn outcome_mut(&mut self) -> Result<RunOutcome> {
        (&mut self.outcome).await.map_err(|_| Error::Stopped)?
    }
}

/// One registered agent, as [`ListAgents`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// The intents routed to it.
    pub intents: Vec<String>,
    /// How often its actor was restarted after a panic.
    pub restarts: u64,
}

/// List the registered agents.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListAgents;

impl Message for ListAgents {
    type Result = Vec<AgentInfo>;
}

/// How busy the orchestrator is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Runs accepted and not finished.
    pub in_flight: usize,
    /// The bound on runs in flight.
    pub max_in_flight: usize,
}

/// Ask for [`RuntimeStats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GetStats;

impl Message for GetStats {
    type Result = RuntimeStats;
}

/// Ask for the orchestrator's [`InFlight`] count: how many runs are in
/// flight, and a wait for none to be (what shutdown drains on).
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchInFlight;

impl Message for WatchInFlight {
    type Result = Arc<InFlight>;
}

/// Ask for a connector's circuit breaker state (`None`: no such connector).
#[derive(Clone, Debug)]
pub struct ConnectorHealth {
    /// The connector's name.
    pub connector: String,
}

impl Message for ConnectorHealth {
    type Result = Option<BreakerState>;
}

/// One registered connector, as [`ListConnectors`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Its name.
    pub name: String,
    /// How often its actor was restarted after a panic in a call.
    pub restarts: u64,
}

/// List the registered connectors, sorted by name.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListConnectors;

impl Message for ListConnectors {
    type Result = Vec<ConnectorInfo>;
}

/// Subscribe `recipient` to every run event from `from` on: stored ones
/// first, then live ones. Dropping the returned handle ends the subscription.
pub struct SubscribeRuns {
    /// The first position delivered.
    pub from: Position,
    /// Who receives the events.
    pub recipient: Recipient<RunEventNotice>,
}

impl Message for SubscribeRuns {
    type Result = Result<SubscriptionHandle>;
}

/// Resume `runs`, the unfinished runs start-up recovery found
/// ([`crate::find_unfinished`]): each agent run this orchestrator has the
/// agent for, and that was resumed fewer than `max_resumes` times before,
/// gets a new attempt (`RunFailed{interrupted, will_retry}`, then
/// `RunStarted{resumed}`) whose finished steps replay from the journal. The
/// rest are closed as `interrupted`, with the steps of runs not resumed.
/// Send it once, before accepting runs.
#[derive(Debug)]
pub struct ResumeInterrupted {
    /// What recovery found.
    pub runs: Vec<Unfinished>,
    /// The most resumes one run gets.
    pub max_resumes: u32,
}

impl Message for ResumeInterrupted {
    type Result = Result<ResumeReport>;
}

/// What [`ResumeInterrupted`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// Agent runs given a new attempt (now executing), in log order.
    pub resumed: Vec<RunId>,
    /// Runs closed as `interrupted`: agent runs past `max_resumes` or whose
    /// agent is gone, and the steps of runs not resumed.
    pub interrupted: Vec<RunId>,
}

/// Cancel a run this node executes: its current attempt is cut off (its
/// steps cancelled: one whose request had not left records `cancelled`, one
/// on the wire goes through the in-doubt path), no retry follows, and the
/// run ends `failed` with kind `cancelled` (and `reason` in its message).
/// The reply comes as soon as the cancellation is signalled; the run's
/// outcome follows once its steps have recorded theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRun {
    /// The run.
    pub run_id: RunId,
    /// Why, recorded in the run's error message.
    pub reason: Option<String>,
}

impl Message for CancelRun {
    /// `Ok` once signalled; [`Error::UnknownRun`] for a run the log does not
    /// have, [`Error::RunFinished`] for one that already ended,
    /// [`Error::RunInProgress`] for one running that this node does not
    /// execute.
    type Result = Result<()>;
}

/// Cut off every run this node executes, for a shutdown past its drain
/// deadline: each attempt stops, its steps record how they ended (one whose
/// request had not left: `cancelled`; one on the wire: the in-doubt path),
/// and the run itself stays unfinished in the log, with nothing of the
/// attempt appended after, for the next start to resume. Their submitters
/// get [`Error::Stopped`]. Replies with the runs cut off; wait for
/// [`InFlight::idle`] to know they have stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct InterruptRuns;

impl Message for InterruptRuns {
    type Result = Vec<RunId>;
}
