//! neonhub's actor runtime: one orchestrator actor routes runs to agents,
//! each in its own supervised actix actor; agents call connectors (Gmail,
//! Slack, Twilio, mock or live) as child runs; every run is recorded as
//! `RunStarted` / `RunSucceeded` / `RunFailed` events in an
//! [`neonhub_events::EventStore`].
//!
//! ```
//! use std::sync::Arc;
//! use neonhub_actors::{OrchestratorBuilder, SubmitRun};
//! use neonhub_events::{EmbeddedLog, LogOptions, SharedStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store: SharedStore = Arc::new(EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap());
//! actix::System::new().block_on(async move {
//!     let orchestrator = OrchestratorBuilder::new(store).builtin_agents().start().unwrap();
//!     let outcome = orchestrator
//!         .send(SubmitRun::intent("echo", serde_json::json!({"hello": "world"})))
//!         .await
//!         .unwrap()
//!         .unwrap();
//!     assert_eq!(outcome.result, Ok(serde_json::json!({"hello": "world"})));
//! });
//! ```

mod agent;
mod agents;
mod connector;
mod error;
mod journal;
mod lease;
mod orchestrator;
mod recovery;
mod retry;
mod subscribe;

pub use agent::{Agent, AgentContext, AgentError, AgentOptions, StepCall};
pub use agents::{
    Content, ContentAgent, EchoAgent, EmailAgent, HttpAgent, MAX_ANSWER_BYTES, SlackAgent,
    SmsAgent, StepsBase, generate as generate_content,
};
pub use connector::{
    BreakerConfig, BreakerState, CallError, Clock, Connector, ConnectorError, ConnectorLimits,
    ConnectorMode, ConnectorOptions, ConnectorsConfig, DEFAULT_MAX_WAITING, Gmail, GmailConfig,
    GmailRefresh, Limit, Llm, LlmConfig, LlmError, LlmPrice, LlmProvider, ManualClock, RateLimit,
    RateLimitsConfig, Reconciled, Retry, Secret, Slack, SlackConfig, SlackError, StepRef, Twilio,
    TwilioConfig, TwilioError, VendorCode, describe_connector_metrics, rate_limit_waits,
};
pub use error::{Error, Result};
pub use journal::RunOutcome;
pub use lease::{DEFAULT_LEASE, LeaseWatch, renew_lease};
pub use orchestrator::{
    AgentInfo, CallStep, CancelRun, ConnectorHealth, ConnectorInfo, DEFAULT_MAX_IN_FLIGHT,
    GetStats, InFlight, InterruptRuns, ListAgents, ListConnectors, Orchestrator,
    OrchestratorBuilder, ResolveStep, ResumeInterrupted, ResumeReport, RunTicket, RuntimeStats,
    StartRun, StepCallError, SubmitRun, SubscribeRuns, Target, WatchInFlight,
    default_agent_threads,
};
pub use recovery::{
    RecoveryReport, RecoverySeed, StepDirectory, Unfinished, UnfinishedIndex, close_interrupted,
    find_unfinished, find_unfinished_from, recover_interrupted,
};
pub use retry::RetryPolicy;
pub use subscribe::{RunEventNotice, SubscriptionHandle, subscribe};
