//! What the log's events give for one run and for the metrics, recomputed
//! here on purpose apart from the fold the projection uses (see the
//! [`super`] module docs): every column of a row and every metric series.

use std::collections::BTreeMap;

use neonhub_events::{
    ErrorKind, Position, RunEvent, RunId, RunKind, RunStatus, StepOutcome, TextEvent, Timestamp,
};
use rustc_hash::FxHashMap;

use crate::metrics::{
    AGENT_RUN_DURATION_SECONDS, AGENT_RUNS_TOTAL, CONNECTOR_REQUEST_DURATION_SECONDS,
    CONNECTOR_REQUESTS_TOTAL, DURATION_BUCKETS_MICROS, LLM_COST_USD_TOTAL, LLM_TOKENS_TOTAL,
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
    /// The input, as JSON text (see [`Fact`]).
    pub(super) input: Json,
    /// The output, as JSON text.
    pub(super) output: Option<Json>,
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

/// What one run event tells the check, its JSON values written out as the
/// projection writes them. Made on the decoding thread, beside the walk:
/// the walk compares text with text, and the decoded JSON trees are freed
/// where they were built.
#[derive(Debug)]
pub(super) enum Fact {
    /// `RunStarted`: what the row takes from it.
    Started(Start),
    /// `RunSucceeded`.
    Succeeded {
        output: Json,
        finished_at: Timestamp,
    },
    /// `RunFailed`.
    Failed {
        error: (ErrorKind, String),
        will_retry: bool,
        finished_at: Timestamp,
    },
    /// `StepResolved` as sent, and the output it records.
    Sent(Json),
    /// `StepResolved` as not sent.
    NotSent,
    /// An event that changes no column.
    Other,
}

/// A JSON value written out as the projection writes it (UTF-8, checked
/// only when shown).
pub(super) type Json = Box<[u8]>;

/// What a row takes from a `RunStarted`, its input written out.
#[derive(Debug)]
pub(super) struct Start {
    pub(super) run_id: RunId,
    pub(super) parent_run_id: Option<RunId>,
    pub(super) correlation_id: uuid::Uuid,
    pub(super) kind: RunKind,
    pub(super) target: String,
    pub(super) operation: String,
    pub(super) intent: Option<String>,
    pub(super) input: Json,
    pub(super) attempt: u32,
    pub(super) started_at: Timestamp,
    pub(super) paused_micros: u64,
}

impl Fact {
    /// The fact of an event decoded with its JSON as text
    /// ([`neonhub_events::Codec::decode_payload_text`]): no tree is built;
    /// `buf` is scratch space for the other events.
    pub(super) fn of_text(event: TextEvent, buf: &mut Vec<u8>) -> Self {
        match event {
            TextEvent::Started(s) => Fact::Started(Start {
                run_id: s.run_id,
                parent_run_id: s.parent_run_id,
                correlation_id: s.correlation_id,
                kind: s.kind,
                target: s.target,
                operation: s.operation,
                intent: s.intent,
                input: s.input.into_bytes(),
                attempt: s.attempt,
                started_at: s.started_at,
                paused_micros: s.paused_micros,
            }),
            TextEvent::Succeeded(s) => Fact::Succeeded {
                output: s.output.into_bytes(),
                finished_at: s.finished_at,
            },
            TextEvent::Other(event) => Fact::of(event, buf),
        }
    }

    /// The fact of `event`; `buf` is scratch space.
    pub(super) fn of(event: RunEvent, buf: &mut Vec<u8>) -> Self {
        let mut json = |value: &serde_json::Value| -> Json {
            buf.clear();
            serde_json::to_writer(&mut *buf, value).expect("writing to memory");
            buf.as_slice().into()
        };
        match event {
            RunEvent::Started(mut s) => {
                let input = json(&std::mem::take(&mut s.input));
                Fact::Started(Start {
                    run_id: s.run_id,
                    parent_run_id: s.parent_run_id,
                    correlation_id: s.correlation_id,
                    kind: s.kind,
                    target: s.target,
                    operation: s.operation,
                    intent: s.intent,
                    input,
                    attempt: s.attempt,
                    started_at: s.started_at,
                    paused_micros: s.paused_micros,
                })
            }
            RunEvent::Succeeded(s) => Fact::Succeeded {
                output: json(&s.output),
                finished_at: s.finished_at,
            },
            RunEvent::Failed(f) => Fact::Failed {
                error: (f.error.kind, f.error.message),
                will_retry: f.will_retry,
                finished_at: f.finished_at,
            },
            RunEvent::StepResolved(r) => match r.outcome {
                StepOutcome::Sent => Fact::Sent(json(&r.output())),
                StepOutcome::NotSent => Fact::NotSent,
            },
            _ => Fact::Other,
        }
    }
}

impl Expected {
    /// What the run used of a language model, read from its output text
    /// here, apart from the projection's fold: a succeeded connector run
    /// whose output reports it ([`neonhub_events::Usage::from_output`]).
    pub(super) fn usage(&self) -> Option<neonhub_events::Usage> {
        if self.kind != RunKind::Connector || self.status != RunStatus::Succeeded {
            return None;
        }
        let output = self.output.as_deref()?;
        // Most connector outputs are no model's: skip parsing them.
        if !output.windows(13).any(|w| w == b"\"input_tokens") {
            return None;
        }
        let output: serde_json::Value = serde_json::from_slice(output).ok()?;
        neonhub_events::Usage::from_output(&output)
    }

    /// A run whose first event, `started`, is at `position`.
    pub(super) fn start(started: Start, position: Position) -> Self {
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
    pub(super) fn apply(&mut self, fact: Fact, position: Position) -> Transition {
        self.last_position = position;
        let was_running = self.status == RunStatus::Running;
        match fact {
            Fact::Started(s) => {
                self.attempts = self.attempts.max(s.attempt);
                self.paused_micros = self.paused_micros.saturating_add(s.paused_micros);
                self.run_again(was_running)
            }
            Fact::Succeeded {
                output,
                finished_at,
            } => {
                self.status = RunStatus::Succeeded;
                self.output = Some(output);
                self.end(finished_at, was_running)
            }
            Fact::Failed {
                error,
                will_retry,
                finished_at,
            } => {
                self.error = Some(error);
                if will_retry {
                    return Transition::None;
                }
                self.status = RunStatus::Failed;
                self.end(finished_at, was_running)
            }
            Fact::Sent(output) => {
                self.status = RunStatus::Succeeded;
                self.output = Some(output);
                // Its times stay those of its execution.
                if was_running {
                    Transition::Finished
                } else {
                    Transition::FinishedAgain
                }
            }
            Fact::NotSent => self.run_again(was_running),
            Fact::Other => Transition::None,
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
    /// The series of each agent, found by its name without building a key
    /// per run.
    agents: FxHashMap<String, TargetSeries>,
    /// The series of each connector.
    connectors: FxHashMap<String, TargetSeries>,
    pub(super) in_flight: i64,
    /// Language-model usage by (connector, model): input tokens, output
    /// tokens, cost in billionths of a dollar.
    llm: BTreeMap<(String, String), (u64, u64, u64)>,
}

/// The series of one agent or connector.
#[derive(Debug, Default)]
struct TargetSeries {
    /// Runs ended, by operation (connectors only; empty for agents) and
    /// status.
    ended: Vec<(String, RunStatus, i64)>,
    /// Durations: per-bucket counts (not cumulative), count, sum in µs.
    durations: Option<(Vec<u64>, u64, u64)>,
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
        let (targets, operation) = match run.kind {
            RunKind::Agent => (&mut self.agents, ""),
            _ => (&mut self.connectors, run.operation.as_str()),
        };
        if !targets.contains_key(&run.target) {
            targets.insert(run.target.clone(), TargetSeries::default());
        }
        let series = targets.get_mut(&run.target).expect("inserted above");
        match series
            .ended
            .iter_mut()
            .find(|(op, status, _)| op == operation && *status == run.status)
        {
            Some((_, _, n)) => *n += 1,
            None => series.ended.push((operation.to_owned(), run.status, 1)),
        }
        if let Some(usage) = run.usage() {
            let (input, output, nano) = self
                .llm
                .entry((run.target.clone(), usage.model.clone()))
                .or_default();
            *input += usage.input_tokens;
            *output += usage.output_tokens;
            *nano += usage.cost_nano_usd();
        }
        if !finished {
            return;
        }
        self.in_flight -= 1;
        let micros = run.duration_micros.unwrap_or(0);
        let (buckets, count, sum_micros) = series
            .durations
            .get_or_insert_with(|| (vec![0; DURATION_BUCKETS_MICROS.len() + 1], 0, 0));
        let bucket = DURATION_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(DURATION_BUCKETS_MICROS.len());
        buckets[bucket] += 1;
        *count += 1;
        *sum_micros = sum_micros.saturating_add(micros);
    }

    /// Every series, keyed as the table stores them.
    pub(super) fn series(&self) -> BTreeMap<SeriesKey, SeriesValue> {
        let mut all = BTreeMap::new();
        for (agent, series) in &self.agents {
            for (_, status, n) in &series.ended {
                all.insert(
                    key(
                        AGENT_RUNS_TOTAL,
                        &[("agent", agent), ("status", status.as_str())],
                    ),
                    SeriesValue::Count(*n),
                );
            }
            if let Some(durations) = &series.durations {
                all.insert(
                    key(AGENT_RUN_DURATION_SECONDS, &[("agent", agent)]),
                    histogram(durations),
                );
            }
        }
        for (connector, series) in &self.connectors {
            for (operation, status, n) in &series.ended {
                all.insert(
                    key(
                        CONNECTOR_REQUESTS_TOTAL,
                        &[
                            ("connector", connector),
                            ("operation", operation),
                            ("status", status.as_str()),
                        ],
                    ),
                    SeriesValue::Count(*n),
                );
            }
            if let Some(durations) = &series.durations {
                all.insert(
                    key(
                        CONNECTOR_REQUEST_DURATION_SECONDS,
                        &[("connector", connector)],
                    ),
                    histogram(durations),
                );
            }
        }
        for ((connector, model), (input, output, nano)) in &self.llm {
            for (direction, n) in [("input", input), ("output", output)] {
                all.insert(
                    key(
                        LLM_TOKENS_TOTAL,
                        &[
                            ("connector", connector),
                            ("model", model),
                            ("direction", direction),
                        ],
                    ),
                    SeriesValue::Count(*n as i64),
                );
            }
            all.insert(
                key(
                    LLM_COST_USD_TOTAL,
                    &[("connector", connector), ("model", model)],
                ),
                SeriesValue::Count(*nano as i64),
            );
        }
        all
    }
}

fn histogram((buckets, count, sum_micros): &(Vec<u64>, u64, u64)) -> SeriesValue {
    SeriesValue::Histogram {
        buckets: buckets.clone(),
        count: *count,
        sum_micros: *sum_micros,
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
