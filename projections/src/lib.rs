//! neonhub's projections: read models built from the event log.
//!
//! - [`ProjectionRunner`] feeds a [`Projection`] from its checkpoint: it
//!   catches up from the log in batches, then follows the store's
//!   subscription. Rows and checkpoint are written in one transaction.
//! - [`AgentRunsProjection`] is the AgentRun audit table (`agent_runs` in an
//!   SQLite file) and the run metrics ([`RunMetrics`], Prometheus text).
//! - [`RunQueries`] lists, fetches and reports on runs; [`rebuild`] replays
//!   the log into a fresh file (as of a position or a time); [`verify`]
//!   proves a table matches the log.
//!
//! ```
//! use std::sync::Arc;
//!
//! use neonhub_events::{
//!     Codec, EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Metadata, RunEvent, RunId,
//!     RunKind, RunStarted, RunSucceeded, SharedStore, Timestamp,
//! };
//! use neonhub_projections::{
//!     AgentRunsProjection, ProjectionRunner, RunFilter, RunQueries, RunStatus,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store: SharedStore = Arc::new(EmbeddedLog::open(dir.path().join("log"), LogOptions::default())?);
//!
//! // One agent run: started, then succeeded.
//! let run_id = RunId::new();
//! let codec = Codec::new();
//! let started = RunEvent::Started(RunStarted {
//!     run_id, kind: RunKind::Agent, target: "email".into(), operation: "run".into(),
//!     intent: Some("email.send".into()), input: serde_json::json!({"to": "a@example.com"}),
//!     attempt: 1, parent_run_id: None, correlation_id: uuid::Uuid::now_v7(),
//!     started_at: Timestamp(1_000),
//!     request_digest: None,
//!     step: None,
//!     resumed: false,
//!     node: None,
//!     paused_micros: 0,
//! });
//! let succeeded = RunEvent::Succeeded(RunSucceeded {
//!     run_id, attempt: 1, output: serde_json::json!({"id": "m-1"}),
//!     duration_micros: 2_000, finished_at: Timestamp(3_000),
//! });
//! let events = vec![
//!     codec.encode(&started, Metadata::default())?,
//!     codec.encode(&succeeded, Metadata::default())?,
//! ];
//! store.append(&run_id.stream(), ExpectedRevision::NoStream, events).await?;
//!
//! // Project it, then query the table and render the metrics.
//! let path = dir.path().join("projections.sqlite");
//! let mut runner = ProjectionRunner::new(store.clone(), AgentRunsProjection::open(&path)?);
//! runner.catch_up().await?;
//! let page = RunQueries::open(&path)?.list(&RunFilter::new().target("email"), None, 50)?;
//! assert_eq!(page.runs[0].status, RunStatus::Succeeded);
//! assert_eq!(page.runs[0].duration_micros, Some(2_000));
//! let text = runner.projection().metrics().render();
//! assert!(text.contains(r#"neonhub_agent_runs_total{agent="email",status="succeeded"} 1"#));
//! # Ok(()) }
//! ```

mod agent_runs;
mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
mod health;
mod metrics;
mod query;
mod replay;
mod report;
mod runner;
mod verify;

pub use agent_runs::{AgentRun, AgentRunsProjection, RunStatus, SCHEMA_VERSION};
pub use error::{Error, Result};
pub use health::{ERROR_KINDS, ProjectionHealth, ProjectionState};
pub use metrics::{
    AGENT_RUN_DURATION_SECONDS, AGENT_RUNS_TOTAL, CONNECTOR_REQUEST_DURATION_SECONDS,
    CONNECTOR_REQUESTS_TOTAL, DURATION_BUCKETS_MICROS, LLM_COST_USD_TOTAL, LLM_TOKENS_TOTAL,
    RUNS_IN_FLIGHT, RunMetrics,
};
pub use query::{
    Cursor, MAX_PAGE_SIZE, MAX_TREE_BYTES, MAX_TREE_RUNS, Page, RunDetail, RunFilter, RunQueries,
    RunSort, RunTree,
};
pub use replay::{AsOf, Progress, RebuildOptions, RebuildSummary, rebuild};
pub use report::{MAX_TIMELINE_BUCKETS, TargetReport, Timeline, TimelineBucket, TimelineBy};
pub use runner::{DEFAULT_BATCH_SIZE, Projection, ProjectionRunner};
pub use verify::{
    FedEvents, LISTED_MISMATCHES, Mismatch, RunEventFeed, VerifyReport, run_event_feed, verify,
    verify_fed, verify_from,
};
