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
//! use neonhub_projections::{AgentRunsProjection, Projection, RunFilter, RunQueries};
//! # fn main() -> neonhub_projections::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("projections.sqlite");
//! let projection = AgentRunsProjection::open(&path)?;
//! assert_eq!(projection.checkpoint().0, 0);
//! let page = RunQueries::open(&path)?.list(&RunFilter::new().target("email"), None, 50)?;
//! assert!(page.runs.is_empty() && page.next.is_none());
//! assert!(projection.metrics().render().contains("neonhub_runs_in_flight 0"));
//! # Ok(()) }
//! ```

mod agent_runs;
mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
mod metrics;
mod query;
mod replay;
mod report;
mod runner;
mod verify;

pub use agent_runs::{AgentRun, AgentRunsProjection, RunStatus, SCHEMA_VERSION};
pub use error::{Error, Result};
pub use metrics::{
    AGENT_RUN_DURATION_SECONDS, AGENT_RUNS_TOTAL, CONNECTOR_REQUEST_DURATION_SECONDS,
    CONNECTOR_REQUESTS_TOTAL, DURATION_BUCKETS_MICROS, RUNS_IN_FLIGHT, RunMetrics,
};
pub use query::{Cursor, MAX_PAGE_SIZE, Page, RunDetail, RunFilter, RunQueries};
pub use replay::{AsOf, Progress, RebuildOptions, RebuildSummary, rebuild};
pub use report::TargetReport;
pub use runner::{DEFAULT_BATCH_SIZE, Projection, ProjectionRunner};
pub use verify::{Mismatch, VerifyReport, verify};
