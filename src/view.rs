//! The JSON shapes of runs, reports and events, shared by the HTTP API and
//! the command line's `--format json`: `Serialize` views borrowing what
//! they show ([`RunView`], [`RunDetailView`], [`RunTreeView`],
//! [`ReportView`], [`TimelineView`], [`EventView`]).

use neonhub_events::{Codec, RecordedEvent, RunError, RunEvent};
use neonhub_projections::{AgentRun, RunDetail, RunTree, TargetReport, TimelineBucket, TimelineBy};
use serde::Serialize;
use serde_json::Value;

use crate::config::format_time;
use crate::server::openapi::{BucketName, ErrorKindName, RunKindName, RunStatusName};

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn to_value(view: impl Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// A run's error: `{"kind", "message"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RunError)]
pub(crate) struct ErrorView<'a> {
    #[schema(value_type = ErrorKindName)]
    kind: &'static str,
    message: &'a str,
}

impl<'a> From<&'a RunError> for ErrorView<'a> {
    fn from(e: &'a RunError) -> Self {
        ErrorView {
            kind: e.kind.as_str(),
            message: &e.message,
        }
    }
}

/// A row of the AgentRun table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Run)]
pub(crate) struct RunView<'a> {
    #[schema(format = Uuid)]
    run_id: String,
    /// The run that started this one (a connector run's agent run).
    #[schema(format = Uuid)]
    parent_run_id: Option<String>,
    #[schema(format = Uuid)]
    correlation_id: String,
    #[schema(value_type = RunKindName)]
    kind: &'static str,
    /// The agent or connector.
    target: &'a str,
    operation: &'a str,
    /// The intent it was submitted for, if any.
    intent: Option<&'a str>,
    #[schema(value_type = RunStatusName)]
    status: &'static str,
    attempts: u32,
    /// The run's input: any JSON value.
    input: &'a Value,
    /// What it answered, once it succeeded: any JSON value.
    output: Option<&'a Value>,
    /// Why it failed, once it did.
    error: Option<ErrorView<'a>>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    duration_ms: Option<f64>,
    /// The log positions of its first and last events.
    first_position: u64,
    last_position: u64,
}

impl<'a> From<&'a AgentRun> for RunView<'a> {
    fn from(run: &'a AgentRun) -> Self {
        RunView {
            run_id: run.run_id.to_string(),
            parent_run_id: run.parent_run_id.map(|p| p.to_string()),
            correlation_id: run.correlation_id.to_string(),
            kind: run.kind.as_str(),
            target: &run.target,
            operation: &run.operation,
            intent: run.intent.as_deref(),
            status: run.status.as_str(),
            attempts: run.attempts,
            input: &run.input,
            output: run.output.as_ref(),
            error: run.error.as_ref().map(ErrorView::from),
            started_at: format_time(run.started_at),
            finished_at: run.finished_at.map(format_time),
            duration_ms: run.duration_micros.map(millis),
            first_position: run.first_position.0,
            last_position: run.last_position.0,
        }
    }
}

/// A run with its child runs (`children`, oldest first).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RunDetail)]
pub(crate) struct RunDetailView<'a> {
    #[serde(flatten)]
    run: RunView<'a>,
    children: Vec<RunView<'a>>,
}

impl<'a> From<&'a RunDetail> for RunDetailView<'a> {
    fn from(detail: &'a RunDetail) -> Self {
        RunDetailView {
            run: RunView::from(&detail.run),
            children: detail.children.iter().map(RunView::from).collect(),
        }
    }
}

/// A run with its child runs as a JSON value.
pub(crate) fn detail_json(detail: &RunDetail) -> Value {
    to_value(RunDetailView::from(detail))
}

/// Every run of one request (`GET /v1/runs/{id}/tree`): `{"correlation_id",
/// "runs", "truncated"}`, the runs in first-position order, as rows of
/// `GET /v1/runs`; `truncated` when the correlation has more than the
/// bound (10,000 runs, 32 MiB of run text).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RunTree)]
pub(crate) struct RunTreeView<'a> {
    #[schema(format = Uuid)]
    correlation_id: String,
    runs: Vec<RunView<'a>>,
    truncated: bool,
}

impl<'a> From<&'a RunTree> for RunTreeView<'a> {
    fn from(tree: &'a RunTree) -> Self {
        RunTreeView {
            correlation_id: tree.correlation_id.to_string(),
            runs: tree.runs.iter().map(RunView::from).collect(),
            truncated: tree.truncated,
        }
    }
}

/// Every run of one request as a JSON value.
pub(crate) fn tree_json(tree: &RunTree) -> Value {
    to_value(RunTreeView::from(tree))
}

/// One bucket of a timeline: `{"start", "runs", "failures", "p50_ms",
/// "p95_ms", "p99_ms"}` (percentiles `null` without finished runs).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineBucket)]
pub(crate) struct BucketView {
    #[schema(format = DateTime)]
    start: String,
    runs: u64,
    failures: u64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl From<&TimelineBucket> for BucketView {
    fn from(b: &TimelineBucket) -> Self {
        BucketView {
            start: format_time(b.start),
            runs: b.runs,
            failures: b.failures,
            p50_ms: b.p50_micros.map(millis),
            p95_ms: b.p95_micros.map(millis),
            p99_ms: b.p99_micros.map(millis),
        }
    }
}

/// `GET /v1/reports/timeline` and `report --by`: `{"by", "buckets"}`,
/// oldest first, every bucket of the window (empty ones with zeros).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Timeline)]
pub(crate) struct TimelineView {
    #[schema(value_type = BucketName)]
    by: &'static str,
    buckets: Vec<BucketView>,
}

impl TimelineView {
    pub(crate) fn new(by: TimelineBy, buckets: &[TimelineBucket]) -> Self {
        TimelineView {
            by: by.as_str(),
            buckets: buckets.iter().map(BucketView::from).collect(),
        }
    }
}

/// A timeline as a JSON value.
pub(crate) fn timeline_json(by: TimelineBy, buckets: &[TimelineBucket]) -> Value {
    to_value(TimelineView::new(by, buckets))
}

/// One agent's or connector's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TargetReport)]
pub(crate) struct ReportView<'a> {
    target: &'a str,
    #[schema(value_type = RunKindName)]
    kind: &'static str,
    runs: u64,
    succeeded: u64,
    failed: u64,
    running: u64,
    success_rate: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Language-model prompt tokens: an agent's are its runs' LLM steps'
    /// (a step counts to the agent of its parent run), a connector's its
    /// own calls'.
    input_tokens: u64,
    /// Language-model answer tokens, counted as `input_tokens`.
    output_tokens: u64,
    /// What those calls cost in US dollars, from the price table (0 for a
    /// model without a price).
    cost_usd: f64,
}

impl<'a> From<&'a TargetReport> for ReportView<'a> {
    fn from(report: &'a TargetReport) -> Self {
        ReportView {
            target: &report.target,
            kind: report.kind.as_str(),
            runs: report.runs,
            succeeded: report.succeeded,
            failed: report.failed,
            running: report.running,
            success_rate: report.success_rate,
            p50_ms: report.p50_micros.map(millis),
            p95_ms: report.p95_micros.map(millis),
            p99_ms: report.p99_micros.map(millis),
            input_tokens: report.input_tokens,
            output_tokens: report.output_tokens,
            cost_usd: report.cost_usd,
        }
    }
}

/// One agent's or connector's figures as a JSON value.
pub(crate) fn report_json(report: &TargetReport) -> Value {
    to_value(ReportView::from(report))
}

/// A recorded event with its payload decoded (`data` is `null` for an event
/// the codec does not know).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub(crate) struct EventView<'a> {
    position: u64,
    stream: &'a str,
    revision: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[schema(format = DateTime)]
    recorded_at: String,
    /// The event's payload (`null` for a type this server does not know).
    data: Option<Value>,
}

impl<'a> EventView<'a> {
    /// Decodes `event`'s payload with `codec`.
    pub(crate) fn new(codec: &Codec, event: &'a RecordedEvent) -> Self {
        let data = match codec.decode(event) {
            Ok(RunEvent::Started(e)) => serde_json::to_value(e).ok(),
            Ok(RunEvent::Succeeded(e)) => serde_json::to_value(e).ok(),
            Ok(RunEvent::Failed(e)) => serde_json::to_value(e).ok(),
            Ok(RunEvent::StepResolved(e)) => serde_json::to_value(e).ok(),
            Ok(_) | Err(_) => None,
        };
        EventView {
            position: event.position.0,
            stream: event.stream.as_str(),
            revision: event.revision.0,
            event_type: &event.event_type,
            recorded_at: format_time(event.recorded_at),
            data,
        }
    }
}

/// A recorded event as a JSON value.
pub(crate) fn event_json(codec: &Codec, event: &RecordedEvent) -> Value {
    to_value(EventView::new(codec, event))
}
