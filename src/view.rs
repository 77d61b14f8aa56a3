//! The JSON shapes of runs, reports and events, shared by the HTTP API and
//! the command line's `--format json`.

use neonhub_actors::RunOutcome;
use neonhub_events::{Codec, RecordedEvent, RunEvent};
use neonhub_projections::{AgentRun, RunDetail, RunStatus, TargetReport};
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

/// A run's row derived from its stream's events, as the AgentRun table
/// derives it (`None` for a stream that does not start with `RunStarted` or
/// does not decode): what `POST /v1/runs` answers before the table has it.
pub(crate) fn run_from_events(codec: &Codec, events: &[RecordedEvent]) -> Option<AgentRun> {
    let (first, rest) = events.split_first()?;
    let RunEvent::Started(s) = codec.decode(first).ok()? else {
        return None;
    };
    let mut run = AgentRun {
        run_id: s.run_id,
        parent_run_id: s.parent_run_id,
        correlation_id: s.correlation_id,
        kind: s.kind,
        target: s.target,
        operation: s.operation,
        intent: s.intent,
        status: RunStatus::Running,
        attempts: s.attempt,
        input: s.input,
        output: None,
        error: None,
        started_at: s.started_at,
        finished_at: None,
        duration_micros: None,
        first_position: first.position,
        last_position: first.position,
    };
    for recorded in rest {
        let finished_at = match codec.decode(recorded).ok()? {
            RunEvent::Started(s) => {
                run.attempts = s.attempt;
                None
            }
            RunEvent::Succeeded(s) => {
                run.status = RunStatus::Succeeded;
                run.output = Some(s.output);
                Some(s.finished_at)
            }
            RunEvent::Failed(f) => {
                run.error = Some(f.error);
                (!f.will_retry).then(|| {
                    run.status = RunStatus::Failed;
                    f.finished_at
                })
            }
            _ => return None,
        };
        if let Some(at) = finished_at {
            run.finished_at = Some(at);
            run.duration_micros = Some(at.0.saturating_sub(run.started_at.0));
        }
        run.last_position = recorded.position;
    }
    Some(run)
}

/// The outcome of a run as its submitter sees it (before the table has it).
pub(crate) fn outcome_json(outcome: &RunOutcome, target: &str, intent: Option<&str>) -> Value {
    let (status, output, error) = match &outcome.result {
        Ok(output) => ("succeeded", output.clone(), Value::Null),
        Err(e) => (
            "failed",
            Value::Null,
            json!({"kind": e.kind.as_str(), "message": e.message}),
        ),
    };
    json!({
        "run_id": outcome.run_id.to_string(),
        "correlation_id": outcome.correlation_id.to_string(),
        "kind": "agent",
        "target": target,
        "intent": intent,
        "status": status,
        "attempts": outcome.attempts,
        "output": output,
        "error": error,
    })
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
