//! The bodies of the API's answers (besides the views of [`crate::view`]).

use neonhub_events::RunStatus;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{RunKindName, RunStatusName, StepOutcomeName};
use crate::service::Catalog;
use crate::view::{EventView, ReportView, RunView};

/// `GET /v1/runs`: a page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunsPage<'a> {
    pub(crate) runs: Vec<RunView<'a>>,
    /// Where the next page starts; `null` on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// `GET /v1/runs/{run_id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventsPage<'a> {
    pub(crate) events: Vec<EventView<'a>>,
}

/// `GET /v1/reports/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentsReport<'a> {
    pub(crate) agents: Vec<ReportView<'a>>,
}

/// An agent of `GET /v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
struct AgentEntry<'a> {
    name: &'a str,
    /// `agent`.
    #[schema(value_type = RunKindName)]
    kind: &'static str,
    /// The intents it takes.
    intents: &'a [String],
    /// How often its actor was restarted after a panic.
    restarts: u64,
}

/// A connector of `GET /v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
struct ConnectorEntry {
    name: &'static str,
    /// `connector`.
    #[schema(value_type = RunKindName)]
    kind: &'static str,
    /// How it calls its vendor (`mock`, `live`, ...).
    mode: &'static str,
    /// How often its actor was restarted after a panic in a call.
    restarts: u64,
}

/// `GET /v1/agents`: the agents with their intents, the connectors with
/// their modes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CatalogView<'a> {
    agents: Vec<AgentEntry<'a>>,
    connectors: Vec<ConnectorEntry>,
}

impl<'a> CatalogView<'a> {
    /// The catalog with the restart counts the orchestrator reports now
    /// (`agents`, `connectors`; a name missing there counts none).
    pub(crate) fn new(
        catalog: &'a Catalog,
        agents: &[neonhub_actors::AgentInfo],
        connectors: &[neonhub_actors::ConnectorInfo],
    ) -> Self {
        let agent_restarts = |name: &str| {
            agents
                .iter()
                .find(|a| a.name == name)
                .map_or(0, |a| a.restarts)
        };
        let connector_restarts = |name: &str| {
            connectors
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.restarts)
        };
        CatalogView {
            agents: catalog
                .agents
                .iter()
                .map(|a| AgentEntry {
                    name: &a.name,
                    kind: "agent",
                    intents: &a.intents,
                    restarts: agent_restarts(&a.name),
                })
                .collect(),
            connectors: catalog
                .connectors
                .iter()
                .map(|c| ConnectorEntry {
                    name: c.name,
                    kind: "connector",
                    mode: c.mode,
                    restarts: connector_restarts(c.name),
                })
                .collect(),
        }
    }
}

/// `GET /healthz`: `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub(crate) status: &'static str,
}

/// `GET /readyz`: `{"status": "ready", "checkpoint", "head"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready`.
    pub(crate) status: &'static str,
    /// The log position the table has applied.
    pub(crate) checkpoint: u64,
    /// The log's head.
    pub(crate) head: u64,
}

/// The 202 of `POST /v1/runs`: `{"run_id", "status": "running"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Running {
    #[schema(format = Uuid)]
    pub(crate) run_id: String,
    /// `running`.
    #[schema(value_type = RunStatusName)]
    pub(crate) status: RunStatus,
}

/// `POST /v1/runs/{run_id}/cancel`: the cancellation is signalled; the run
/// ends `failed` with kind `cancelled` once its steps have recorded theirs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelling {
    #[schema(format = Uuid)]
    pub(crate) run_id: String,
    /// `cancelling`.
    pub(crate) status: &'static str,
}

/// `POST /v1/runs/{run_id}/steps`: the step's output, executed now or
/// replayed from the journal.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StepDone {
    /// The step's key.
    pub(crate) step: String,
    /// The step's output (what the connector answered, as recorded).
    #[schema(value_type = Object)]
    pub(crate) output: serde_json::Value,
}

/// `POST /v1/runs/{run_id}/steps/{key}/resolve`: the decision is recorded
/// and the run resumed with a new attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Resolved {
    #[schema(format = Uuid)]
    pub(crate) run_id: String,
    /// The step's key.
    pub(crate) step: String,
    #[schema(value_type = StepOutcomeName)]
    pub(crate) outcome: &'static str,
    /// The run's new attempt.
    pub(crate) attempt: u32,
    /// `running`.
    #[schema(value_type = RunStatusName)]
    pub(crate) status: RunStatus,
}
