//! The one error type of the actors crate, with what a caller should do
//! about each variant.

use neonhub_events::RunId;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a run could not be submitted, or why the runtime could not be set up.
///
/// A run that was accepted and then failed is not an `Error`: it is a
/// [`crate::RunOutcome`] whose result holds the typed [`neonhub_events::RunError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No agent is registered under this name. Nothing was recorded.
    ///
    /// A client error (HTTP 404): list the agents and fix the name.
    #[error("no agent is named {0:?}")]
    UnknownAgent(String),

    /// No agent handles this intent. Nothing was recorded.
    ///
    /// A client error (HTTP 404): list the intents and fix the request.
    #[error("no agent handles the intent {0:?}")]
    UnknownIntent(String),

    /// No connector is registered under this name (an agent asked for one
    /// that was not configured). Nothing was recorded.
    #[error("no connector is named {0:?}")]
    UnknownConnector(String),

    /// The orchestrator already has `limit` runs in flight and refused this
    /// one at once. Nothing was recorded.
    ///
    /// Back off and retry later (HTTP 503 with `Retry-After`).
    #[error("overloaded: {limit} runs are already in flight; retry later")]
    Overloaded {
        /// The configured bound on runs in flight.
        limit: usize,
    },

    /// A run with this id was started elsewhere (another node, or a process
    /// that died before recovery) and has not finished. Nothing was recorded.
    ///
    /// HTTP 409: poll the run's events, or run recovery if its process died.
    #[error("run {0} was started elsewhere and has not finished")]
    RunInProgress(RunId),

    /// The run id was already used for another request: another agent or
    /// another input. A client-chosen run id is an idempotency key, so this
    /// is a second request under the first one's key. Nothing was recorded.
    ///
    /// HTTP 409 `run_id_conflict`: send the original request again to get
    /// its outcome, or use a new run id for a new request.
    #[error(
        "run id {run_id} was already used for another request (another agent or another \
         input); resend that request to get its outcome, or use a new run id"
    )]
    RunIdConflict {
        /// The run id both requests named.
        run_id: RunId,
    },

    /// The log has no run with this id.
    ///
    /// HTTP 404: check the id (`runs list`).
    #[error("no run has the id {0}")]
    UnknownRun(RunId),

    /// The run already ended, so it cannot be cancelled (or changed).
    ///
    /// HTTP 409 with its status: nothing to do, it is over.
    #[error("run {run_id} already ended ({status})")]
    RunFinished {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: neonhub_events::RunStatus,
    },

    /// The run has no step with this key.
    ///
    /// HTTP 404: the run's steps are listed with it (`runs show RUN_ID`).
    #[error("run {run_id} has no step {step:?}")]
    UnknownStep {
        /// The run.
        run_id: RunId,
        /// The key asked for.
        step: String,
    },

    /// The step did not end `in_doubt` (or was already resolved the other
    /// way), so there is nothing to decide.
    ///
    /// HTTP 409 with the step's status.
    #[error("step {step:?} of run {run_id} is not in doubt ({status}); nothing to resolve")]
    StepNotInDoubt {
        /// The run.
        run_id: RunId,
        /// The step's key.
        step: String,
        /// Where the step stands.
        status: neonhub_events::RunStatus,
    },

    /// The event store failed; see the inner error for what to do.
    #[error(transparent)]
    Store(#[from] neonhub_events::Error),

    /// The persisted state start-up recovery was seeded with (the AgentRun
    /// table, see [`crate::RecoverySeed`]) could not be read.
    ///
    /// Recover from the whole log instead ([`crate::find_unfinished`]); the
    /// message says what failed.
    #[error("the state recovery was seeded with could not be read: {0}")]
    Seed(String),

    /// The runtime was configured inconsistently (two agents with one name,
    /// one intent for two agents, live mode without credentials).
    ///
    /// Fix the configuration; the message names what is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The orchestrator or an actor it needs has stopped (shutdown).
    ///
    /// Expected during shutdown; otherwise restart the service (HTTP 503).
    #[error("the actor runtime has stopped")]
    Stopped,
}
