//! The JSON shapes of runs, reports and events, shared by the HTTP API and
//! the command line's `--format json`.

use neonhub_events::{Codec, RecordedEvent, RunEvent};
use neonhub_projections::{AgentRun, RunDetail, TargetReport};
use serde_json::{Value, json};

use crate::config::format_time;

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A row of the AgentRun table.
pub(crate) fn run_json(run: &AgentRun) -> Value {
    json!({
        "run_id": run.run_id.to_string(),
        "parent_run_id": run.parent_run_id.map(|p| p.to_string()),
        "correlation_id": run.correlation_id.to_string(),
        "kind": run.kind.as_str(),
        "target": run.target,
        "operation": run.operation,
        "intent": run.intent,
        "status": run.status.as_str(),
        "attempts": run.attempts,
        "input": run.input,
        "output": run.output,
        "error": run.error.as_ref().map(|e| json!({"kind": e.kind.as_str(), "message": e.message})),
        "started_at": format_time(run.started_at),
        "finished_at": run.finished_at.map(format_time),
        "duration_ms": run.duration_micros.map(millis),
        "first_position": run.first_position.0,
        "last_position": run.last_position.0,
    })
}

/// A run with its child runs (`children`, oldest first).
pub(crate) fn detail_json(detail: &RunDetail) -> Value {
    let mut value = run_json(&detail.run);
    value["children"] = Value::Array(detail.children.iter().map(run_json).collect());
    value
}

/// One agent's or connector's figures.
pub(crate) fn report_json(report: &TargetReport) -> Value {
    json!({
        "target": report.target,
        "kind": report.kind.as_str(),
        "runs": report.runs,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "running": report.running,
        "success_rate": report.success_rate,
        "p50_ms": report.p50_micros.map(millis),
        "p95_ms": report.p95_micros.map(millis),
        "p99_ms": report.p99_micros.map(millis),
    })
}

/// A recorded event with its payload decoded (`data` is `null` for an event
/// the codec does not know).
pub(crate) fn event_json(codec: &Codec, event: &RecordedEvent) -> Value {
    let data = match codec.decode(event) {
        Ok(RunEvent::Started(e)) => serde_json::to_value(e).ok(),
        Ok(RunEvent::Succeeded(e)) => serde_json::to_value(e).ok(),
        Ok(RunEvent::Failed(e)) => serde_json::to_value(e).ok(),
        Ok(_) | Err(_) => None,
    };
    json!({
        "position": event.position.0,
        "stream": event.stream.as_str(),
        "revision": event.revision.0,
        "type": event.event_type,
        "recorded_at": format_time(event.recorded_at),
        "data": data,
    })
}
