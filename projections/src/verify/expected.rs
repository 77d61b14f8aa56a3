//! What the log's events give for one run and for the metrics, recomputed
//! here on purpose apart from the fold the projection uses (see the
//! [`super`] module docs): every column of a row and every metric series.

use std::collections::BTreeMap;

use neonhub_events::{
    ErrorKind, Position, RunEvent, RunId, RunKind, RunStarted, RunStatus, StepOutcome, Timestamp,
};
use serde_json::Value;

use crate::metrics::{
    AGENT_RUN_DURATION_SECONDS, AGENT_RUNS_TOTAL, CONNECTOR_REQUEST_DURATION_SECONDS,
    CONNECTOR_REQUESTS_TOTAL, DURATION_BUCKETS_MICROS,
};

/// One run's row as the log gives it.
#[derive(Debug)]
pub(super) struct Expected {
    pub(super) run_id: RunId,
    pub(super) parent_run_id: Option<RunId>,
    pub(super) correlation_id: uuid::Uuid,
    pub(super) kind: RunKind,
    pub(super) target: String,
    pub(super) operation: String,
    pub(super) intent: Option<String>,
    pub(super) status: RunStatus,
    pub(super) attempts: u32,
    pub(super) input: Value,
    pub(super) output: Option<Value>,
    pub(super) error: Option<(ErrorKind, String)>,
    pub(super) started_at: Timestamp,
    pub(super) finished_at: Option<Timestamp>,
    pub(super) duration_micros: Option<u64>,
    pub(super) paused_micros: u64,
    pub(super) first_position: Position,
    pub(super) last_position: Position,
}

/// How one event moved a run, for the metrics.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Transition {
    /// Nothing the metrics count.
    None,
    /// Ended after running: counted, its duration observed, out of flight.
    Finished,
    /// Ended again after ending (a step in doubt resolved as sent): counted
    /// under its new status only.
    FinishedAgain,
    /// Runs again after it had ended: in flight once more.
    Reopened,
}

impl Expected {
    /// A run whose first event, `started`, is at `position`.
    pub(super) fn start(started: RunStarted, position: Position) -> Self {
        Self {
            run_id: started.run_id,
            parent_run_id: started.parent_run_id,
            correlation_id: started.correlation_id,
            kind: started.kind,
            target: started.target,
            operation: started.operation,
            intent: started.intent,
            status: RunStatus::Running,
            attempts: started.attempt,
            input: started.input,
            output: None,
            error: None,
            started_at: started.started_at,
            finished_at: None,
            duration_micros: None,
            paused_micros: started.paused_micros,
            first_position: position,
            last_position: position,
        }
    }

    /// Takes the run's next event, at `position`, into account.
    pub(super) fn apply(&mut self, event: RunEvent, position: Position) -> Transition {
        self.last_position = position;
        let was_running = self.status == RunStatus::Running;
        match event {
            RunEvent::Started(s) => {
                self.attempts = self.attempts.max(s.attempt);
                self.paused_micros = self.paused_micros.saturating_add(s.paused_micros);
                self.run_again(was_running)
            }
            RunEvent::Succeeded(s) => {
                self.status = RunStatus::Succeeded;
                self.output = Some(s.output);
                self.end(s.finished_at, was_running)
            }
            RunEvent::Failed(f) => {
                self.error = Some((f.error.kind, f.error.message));
                if f.will_retry {
                    return Transition::None;
                }
                self.status = RunStatus::Failed;
                self.end(f.finished_at, was_running)
            }
            RunEvent::StepResolved(r) => match r.outcome {
                StepOutcome::Sent => {
                    self.status = RunStatus::Succeeded;
                    self.output = Some(r.output());
                    // Its times stay those of its execution.
                    if was_running {
                        Transition::Finished
                    } else {
                        Transition::FinishedAgain
                    }
                }
                StepOutcome::NotSent => self.run_again(was_running),
            },
            _ => Transition::None,
        }
    }

    fn run_again(&mut self, was_running: bool) -> Transition {
        if was_running {
            return Transition::None;
        }
        self.status = RunStatus::Running;
        self.finished_at = None;
        self.duration_micros = None;
        Transition::Reopened
    }

    fn end(&mut self, at: Timestamp, was_running: bool) -> Transition {
        self.finished_at = Some(at);
        // First start to the end, leaving out the time it was paused.
        self.duration_micros = Some(
            at.0.saturating_sub(self.started_at.0)
                .saturating_sub(self.paused_micros),
        );
        if was_running {
            Transition::Finished
        } else {
            Transition::FinishedAgain
        }
    }
}

/// A metric series: its family and its labels in the stored order.
pub(super) type SeriesKey = (String, Vec<(String, String)>);

/// A metric series' value, exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SeriesValue {
    /// A counter or the in-flight gauge.
    Count(i64),
    /// A histogram: per-bucket counts (not cumulative), count, sum in µs.
    Histogram {
        buckets: Vec<u64>,
        count: u64,
        sum_micros: u64,
    },
}

/// Every metric series as the log gives it.
#[derive(Debug, Default)]
pub(super) struct ExpectedMetrics {
    pub(super) series: BTreeMap<SeriesKey, SeriesValue>,
    pub(super) in_flight: i64,
}

impl ExpectedMetrics {
    /// A run's first event.
    pub(super) fn started(&mut self) {
        self.in_flight += 1;
    }

    /// `run` moved by `transition`.
    pub(super) fn record(&mut self, run: &Expected, transition: Transition) {
        let finished = match transition {
            Transition::None => return,
            Transition::Reopened => {
                self.in_flight += 1;
                return;
            }
            Transition::Finished => true,
            Transition::FinishedAgain => false,
        };
        let status = run.status.as_str().to_owned();
        let (counter, histogram) = match run.kind {
            RunKind::Agent => (
                key(
                    AGENT_RUNS_TOTAL,
                    &[("agent", &run.target), ("status", &status)],
                ),
                key(AGENT_RUN_DURATION_SECONDS, &[("agent", &run.target)]),
            ),
            _ => (
                key(
                    CONNECTOR_REQUESTS_TOTAL,
                    &[
                        ("connector", &run.target),
                        ("operation", &run.operation),
                        ("status", &status),
                    ],
                ),
                key(
                    CONNECTOR_REQUEST_DURATION_SECONDS,
                    &[("connector", &run.target)],
                ),
            ),
        };
        match self.series.entry(counter).or_insert(SeriesValue::Count(0)) {
            SeriesValue::Count(n) => *n += 1,
            SeriesValue::Histogram { .. } => {}
        }
        if !finished {
            return;
        }
        self.in_flight -= 1;
        let micros = run.duration_micros.unwrap_or(0);
        let entry = self
            .series
            .entry(histogram)
            .or_insert_with(|| SeriesValue::Histogram {
                buckets: vec![0; DURATION_BUCKETS_MICROS.len() + 1],
                count: 0,
                sum_micros: 0,
            });
        if let SeriesValue::Histogram {
            buckets,
            count,
            sum_micros,
        } = entry
        {
            let bucket = DURATION_BUCKETS_MICROS
                .iter()
                .position(|bound| micros <= *bound)
                .unwrap_or(DURATION_BUCKETS_MICROS.len());
            buckets[bucket] += 1;
            *count += 1;
            *sum_micros = sum_micros.saturating_add(micros);
        }
    }
}

fn key(family: &str, labels: &[(&str, &str)]) -> SeriesKey {
    (
        family.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// A series as Prometheus names it: `family{label="value",...}`.
pub(super) fn series_name((family, labels): &SeriesKey) -> String {
    if labels.is_empty() {
        return family.clone();
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{family}{{{}}}", labels.join(","))
}
