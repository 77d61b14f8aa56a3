//! Run metrics derived from the log (counts and duration histograms by agent,
//! connector and status, runs in flight), kept exactly and rendered as
//! Prometheus text through `metrics-exporter-prometheus`.
//!
//! The state is integers only (counts, bucket counts, sums in microseconds),
//! persisted by the AgentRun projection in the same transaction as its rows
//! and checkpoint. Restoring it after a restart is therefore exact: the text
//! equals what a full replay of the log renders, without replaying the log.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{Key, KeyName, Label, Level, Recorder, SharedString};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_value, write_help_line, write_type_line,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use neonhub_events::RunKind;
use rusqlite::{Connection, Transaction, params};

use crate::agent_runs::AgentRun;
use crate::error::{Error, Result};

/// `neonhub_agent_runs_total{agent,status}`: agent runs that finished, by final status.
pub const AGENT_RUNS_TOTAL: &str = "neonhub_agent_runs_total";
/// `neonhub_agent_run_duration_seconds{agent}`: durations of finished agent runs.
pub const AGENT_RUN_DURATION_SECONDS: &str = "neonhub_agent_run_duration_seconds";
/// `neonhub_connector_requests_total{connector,operation,status}`: finished connector runs.
pub const CONNECTOR_REQUESTS_TOTAL: &str = "neonhub_connector_requests_total";
/// `neonhub_connector_request_duration_seconds{connector}`: durations of finished connector runs.
pub const CONNECTOR_REQUEST_DURATION_SECONDS: &str = "neonhub_connector_request_duration_seconds";
/// `neonhub_runs_in_flight`: runs (agent and connector) started and not yet finished.
pub const RUNS_IN_FLIGHT: &str = "neonhub_runs_in_flight";
/// `neonhub_llm_tokens_total{connector,model,direction}`: language-model
/// tokens of succeeded calls ([`neonhub_events::Usage`]), `direction`
/// `input` (the prompt) or `output` (the answer).
pub const LLM_TOKENS_TOTAL: &str = "neonhub_llm_tokens_total";
/// `neonhub_llm_cost_usd_total{connector,model}`: what succeeded
/// language-model calls cost, in US dollars. Kept exactly as an integer of
/// billionths of a dollar (each call's cost rounded to one), rendered in
/// dollars.
pub const LLM_COST_USD_TOTAL: &str = "neonhub_llm_cost_usd_total";

/// Upper bounds of the duration histogram buckets, in microseconds
/// (5 ms to 5 min; `+Inf` is implied).
pub const DURATION_BUCKETS_MICROS: [u64; 15] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// One time series: a family name and its labels, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Series {
    family: &'static str,
    labels: Vec<(&'static str, String)>,
}

impl Series {
    fn labels_json(&self) -> String {
        let pairs: Vec<[&str; 2]> = self.labels.iter().map(|(k, v)| [*k, v.as_str()]).collect();
        serde_json::to_string(&pairs).unwrap_or_default()
    }

    fn from_stored(family: &str, labels: &str) -> Result<Self> {
        let family = [
            AGENT_RUNS_TOTAL,
            AGENT_RUN_DURATION_SECONDS,
            CONNECTOR_REQUESTS_TOTAL,
            CONNECTOR_REQUEST_DURATION_SECONDS,
            RUNS_IN_FLIGHT,
            LLM_TOKENS_TOTAL,
            LLM_COST_USD_TOTAL,
        ]
        .into_iter()
        .find(|f| *f == family)
        .ok_or_else(|| corrupt(family, "unknown metric family"))?;
        let pairs: Vec<[String; 2]> =
            serde_json::from_str(labels).map_err(|e| corrupt(family, &e.to_string()))?;
        let mut out = Vec::with_capacity(pairs.len());
        for [k, v] in pairs {
            let k = [
                "agent",
                "status",
                "connector",
                "operation",
                "model",
                "direction",
            ]
            .into_iter()
            .find(|n| *n == k)
            .ok_or_else(|| corrupt(family, "unknown label"))?;
            out.push((k, v));
        }
        Ok(Series {
            family,
            labels: out,
        })
    }

    fn key(&self) -> Key {
        let labels: Vec<Label> = self
            .labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        Key::from_parts(self.family, labels)
    }

    fn label_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.labels {
            let _ = write!(out, "{k}=\"{}\",", sanitize_label_value(v));
        }
        out
    }
}

fn corrupt(what: &str, reason: &str) -> Error {
    Error::CorruptRow {
        run_id: format!("metric {what}"),
        reason: reason.to_owned(),
    }
}

/// A duration histogram, exactly: per-bucket (non-cumulative) counts, the
/// count and the sum in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Histogram {
    /// `DURATION_BUCKETS_MICROS.len() + 1` counts; the last is above every bound.
    buckets: Vec<u64>,
    count: u64,
    sum_micros: u64,
}

impl Histogram {
    fn observe(&mut self, micros: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; DURATION_BUCKETS_MICROS.len() + 1];
        }
        let idx = DURATION_BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(DURATION_BUCKETS_MICROS.len());
        self.buckets[idx] += 1;
        self.count += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }
}

/// What one batch changes, computed before its transaction commits.
#[derive(Debug, Default)]
pub(crate) struct MetricsDelta {
    counters: HashMap<Series, u64>,
    observations: HashMap<Series, Vec<u64>>,
    in_flight: i64,
}

impl MetricsDelta {
    /// A run's first `RunStarted` was applied.
    pub(crate) fn started(&mut self) {
        self.in_flight += 1;
    }

    /// A run that had ended `in_doubt` runs again (its step was resolved):
    /// in flight once more. Its earlier outcome stays counted: the counters
    /// count terminal events, and a reopened run records a second one.
    pub(crate) fn reopened(&mut self) {
        self.in_flight += 1;
    }

    /// A run reached a terminal event (`run` is the finished row); it was
    /// in flight unless it had ended before (a step resolved as sent after
    /// ending in_doubt: counted under its new status, its duration not
    /// observed twice).
    pub(crate) fn finished(&mut self, run: &AgentRun, was_in_flight: bool) {
        if was_in_flight {
            self.in_flight -= 1;
        }
        let status = run.status.as_str().to_owned();
        let (counter, histogram) = match run.kind {
            RunKind::Agent => (
                Series {
                    family: AGENT_RUNS_TOTAL,
                    labels: vec![("agent", run.target.clone()), ("status", status)],
                },
                Series {
                    family: AGENT_RUN_DURATION_SECONDS,
                    labels: vec![("agent", run.target.clone())],
                },
            ),
            RunKind::Connector => (
                Series {
                    family: CONNECTOR_REQUESTS_TOTAL,
                    labels: vec![
                        ("connector", run.target.clone()),
                        ("operation", run.operation.clone()),
                        ("status", status),
                    ],
                },
                Series {
                    family: CONNECTOR_REQUEST_DURATION_SECONDS,
                    labels: vec![("connector", run.target.clone())],
                },
            ),
        };
        *self.counters.entry(counter).or_default() += 1;
        if let Some(usage) = run.usage() {
            for (direction, tokens) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
            ] {
                let series = Series {
                    family: LLM_TOKENS_TOTAL,
                    labels: vec![
                        ("connector", run.target.clone()),
                        ("model", usage.model.clone()),
                        ("direction", direction.to_owned()),
                    ],
                };
                *self.counters.entry(series).or_default() += tokens;
            }
            let series = Series {
                family: LLM_COST_USD_TOTAL,
                labels: vec![
                    ("connector", run.target.clone()),
                    ("model", usage.model.clone()),
                ],
            };
            *self.counters.entry(series).or_default() += usage.cost_nano_usd();
        }
        if was_in_flight {
            // A resolved step's execution time was observed when it ended.
            self.observations
                .entry(histogram)
                .or_default()
                .push(run.duration_micros.unwrap_or(0));
        }
    }

    fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.observations.is_empty() && self.in_flight == 0
    }
}

/// The exact metric state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct MetricsState {
    counters: BTreeMap<Series, u64>,
    histograms: BTreeMap<Series, Histogram>,
    in_flight: i64,
}

impl MetricsState {
    /// The state after `delta`, for the series `delta` touches only.
    fn updated(&self, delta: &MetricsDelta) -> MetricsState {
        let mut out = MetricsState {
            in_flight: self.in_flight + delta.in_flight,
            ..MetricsState::default()
        };
        for (series, n) in &delta.counters {
            let v = self.counters.get(series).copied().unwrap_or(0) + n;
            out.counters.insert(series.clone(), v);
        }
        for (series, obs) in &delta.observations {
            let mut h = self.histograms.get(series).cloned().unwrap_or_default();
            for micros in obs {
                h.observe(*micros);
            }
            out.histograms.insert(series.clone(), h);
        }
        out
    }
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS run_metric_counters (
    family TEXT NOT NULL,
    labels TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (family, labels)
);
CREATE TABLE IF NOT EXISTS run_metric_histograms (
    family TEXT NOT NULL,
    labels TEXT NOT NULL,
    count INTEGER NOT NULL,
    sum_micros INTEGER NOT NULL,
    buckets TEXT NOT NULL,
    PRIMARY KEY (family, labels)
);
";

struct Inner {
    state: MetricsState,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// The run metrics of one AgentRun projection: a cheap, cloneable handle
/// that renders the Prometheus text while the runner keeps it up to date.
///
/// Counters and the in-flight gauge go through a [`PrometheusRecorder`] (not
/// installed globally); the duration histograms are written with the
/// exporter's own formatting from exact integer state. Families and series
/// come out sorted, so the text of two equal states is byte-identical.
#[derive(Clone)]
pub struct RunMetrics {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics").finish_non_exhaustive()
    }
}

impl RunMetrics {
    /// Empty metrics.
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let metrics = RunMetrics {
            inner: Arc::new(Mutex::new(Inner {
                state: MetricsState::default(),
                recorder,
                handle,
            })),
        };
        metrics.publish(&MetricsState::default());
        metrics
    }

    /// Loads the persisted state (as of the projection's checkpoint).
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let mut state = MetricsState::default();
        let mut stmt = conn.prepare("SELECT family, labels, value FROM run_metric_counters")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let family: String = row.get(0)?;
            let labels: String = row.get(1)?;
            let value: i64 = row.get(2)?;
            if family == RUNS_IN_FLIGHT {
                state.in_flight = value;
            } else {
                state
                    .counters
                    .insert(Series::from_stored(&family, &labels)?, value as u64);
            }
        }
        let mut stmt = conn.prepare(
            "SELECT family, labels, count, sum_micros, buckets FROM run_metric_histograms",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let family: String = row.get(0)?;
            let labels: String = row.get(1)?;
            let count: i64 = row.get(2)?;
            let sum: i64 = row.get(3)?;
            let buckets: String = row.get(4)?;
            let buckets: Vec<u64> =
                serde_json::from_str(&buckets).map_err(|e| corrupt(&family, &e.to_string()))?;
            if buckets.len() != DURATION_BUCKETS_MICROS.len() + 1 {
                return Err(corrupt(&family, "wrong number of buckets"));
            }
            state.histograms.insert(
                Series::from_stored(&family, &labels)?,
                Histogram {
                    buckets,
                    count: count as u64,
                    sum_micros: sum as u64,
                },
            );
        }
        let metrics = Self::new();
        {
            let mut inner = metrics.lock();
            inner.state = state.clone();
        }
        metrics.publish(&state);
        Ok(metrics)
    }

    /// Writes the series `delta` changes into `tx`; returns the new values
    /// to [`RunMetrics::commit`] once the transaction committed.
    pub(crate) fn persist(
        &self,
        tx: &Transaction<'_>,
        delta: &MetricsDelta,
    ) -> Result<Option<PendingMetrics>> {
        if delta.is_empty() {
            return Ok(None);
        }
        let updated = self.lock().state.updated(delta);
        let mut counter = tx.prepare_cached(
            "INSERT INTO run_metric_counters (family, labels, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (family, labels) DO UPDATE SET value = excluded.value",
        )?;
        for (series, value) in &updated.counters {
            counter.execute(params![series.family, series.labels_json(), *value as i64])?;
        }
        counter.execute(params![RUNS_IN_FLIGHT, "[]", updated.in_flight])?;
        let mut hist = tx.prepare_cached(
            "INSERT INTO run_metric_histograms (family, labels, count, sum_micros, buckets)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (family, labels) DO UPDATE SET count = excluded.count,
                 sum_micros = excluded.sum_micros, buckets = excluded.buckets",
        )?;
        for (series, h) in &updated.histograms {
            hist.execute(params![
                series.family,
                series.labels_json(),
                h.count as i64,
                h.sum_micros as i64,
                serde_json::to_string(&h.buckets).unwrap_or_default(),
            ])?;
        }
        Ok(Some(PendingMetrics(updated)))
    }

    /// Makes values written by [`RunMetrics::persist`] visible, after commit.
    pub(crate) fn commit(&self, updated: PendingMetrics) {
        let updated = updated.0;
        {
            let mut inner = self.lock();
            inner.state.in_flight = updated.in_flight;
            for (s, v) in &updated.counters {
                inner.state.counters.insert(s.clone(), *v);
            }
            for (s, h) in &updated.histograms {
                inner.state.histograms.insert(s.clone(), h.clone());
            }
        }
        self.publish(&updated);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pushes values into the recorder.
    fn publish(&self, values: &MetricsState) {
        let inner = self.lock();
        let meta = metrics::Metadata::new(module_path!(), Level::INFO, None);
        for (series, value) in &values.counters {
            if series.family == LLM_COST_USD_TOTAL {
                // Dollars, not an integer: rendered in `render`.
                continue;
            }
            inner
                .recorder
                .register_counter(&series.key(), &meta)
                .absolute(*value);
        }
        inner
            .recorder
            .register_gauge(&Key::from_name(RUNS_IN_FLIGHT), &meta)
            .set(values.in_flight as f64);
    }

    /// The metrics as Prometheus text (exposition format 0.0.4), families
    /// and series sorted.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut text = inner.handle.render();
        let costs: Vec<_> = inner
            .state
            .counters
            .iter()
            .filter(|(s, _)| s.family == LLM_COST_USD_TOTAL)
            .collect();
        if !costs.is_empty() {
            write_help_line(
                &mut text,
                LLM_COST_USD_TOTAL,
                None,
                None,
                help(LLM_COST_USD_TOTAL),
            );
            write_type_line(&mut text, LLM_COST_USD_TOTAL, None, None, "counter");
            for (s, nano) in costs {
                let labels = s.label_text();
                let labels = labels.trim_end_matches(',');
                let _ = writeln!(
                    text,
                    "{LLM_COST_USD_TOTAL}{{{labels}}} {}",
                    *nano as f64 / 1e9
                );
            }
            text.push('\n');
        }
        for family in [
            AGENT_RUN_DURATION_SECONDS,
            CONNECTOR_REQUEST_DURATION_SECONDS,
        ] {
            let series: Vec<_> = inner
                .state
                .histograms
                .iter()
                .filter(|(s, _)| s.family == family)
                .collect();
            if series.is_empty() {
                continue;
            }
            write_help_line(&mut text, family, None, None, help(family));
            write_type_line(&mut text, family, None, None, "histogram");
            for (s, h) in series {
                let labels = s.label_text();
                let mut cumulative = 0;
                for (bound, n) in DURATION_BUCKETS_MICROS.iter().zip(&h.buckets) {
                    cumulative += n;
                    let _ = writeln!(
                        text,
                        "{family}_bucket{{{labels}le=\"{}\"}} {cumulative}",
                        *bound as f64 / 1e6
                    );
                }
                let _ = writeln!(text, "{family}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
                let labels = labels.trim_end_matches(',');
                let _ = writeln!(
                    text,
                    "{family}_sum{{{labels}}} {}",
                    h.sum_micros as f64 / 1e6
                );
                let _ = writeln!(text, "{family}_count{{{labels}}} {}", h.count);
            }
            text.push('\n');
        }
        canonical(&text)
    }
}

/// A state computed by [`RunMetrics::persist`], waiting for its commit.
#[derive(Debug)]
pub(crate) struct PendingMetrics(MetricsState);

fn help(family: &str) -> &'static str {
    match family {
        AGENT_RUNS_TOTAL => "Agent runs that finished, by agent and final status.",
        AGENT_RUN_DURATION_SECONDS => {
            "Duration of finished agent runs, first start to terminal event, in seconds."
        }
        CONNECTOR_REQUESTS_TOTAL => {
            "Connector calls that finished, by connector, operation and final status."
        }
        CONNECTOR_REQUEST_DURATION_SECONDS => {
            "Duration of finished connector calls, first start to terminal event, in seconds."
        }
        LLM_TOKENS_TOTAL => {
            "Language-model tokens of succeeded calls, by connector, model and direction."
        }
        LLM_COST_USD_TOTAL => {
            "Cost of succeeded language-model calls in US dollars, by connector and model."
        }
        _ => "Runs started and not yet finished.",
    }
}

fn describe(recorder: &PrometheusRecorder) {
    for family in [AGENT_RUNS_TOTAL, CONNECTOR_REQUESTS_TOTAL, LLM_TOKENS_TOTAL] {
        recorder.describe_counter(
            KeyName::from(family),
            None,
            SharedString::const_str(help(family)),
        );
    }
    recorder.describe_gauge(
        KeyName::from(RUNS_IN_FLIGHT),
        None,
        SharedString::const_str(help(RUNS_IN_FLIGHT)),
    );
}

/// Sorts the families of a Prometheus text by name and the sample lines of
/// each family, keeping `# HELP`/`# TYPE` first.
/// Where a sample line sorts: its name, its labels without `le`, then its
/// `le` as a number (`+Inf` last; none first), then the line itself.
fn sample_order(line: &str) -> (&str, String, f64) {
    let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
    let (name, labels) = series.split_once('{').unwrap_or((series, ""));
    let mut le = f64::NEG_INFINITY;
    let mut rest = String::with_capacity(labels.len());
    let mut labels = labels;
    while let Some(at) = labels.find("le=\"") {
        // Only the `le` label itself, not one that ends in `le`.
        let starts_label = at == 0 || labels.as_bytes()[at - 1] == b',';
        let value_and_after = &labels[at + 4..];
        let Some(end) = value_and_after.find('"') else {
            break;
        };
        if starts_label {
            rest.push_str(&labels[..at]);
            let value = &value_and_after[..end];
            le = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
        } else {
            rest.push_str(&labels[..at + 4 + end + 1]);
        }
        labels = &value_and_after[end + 1..];
    }
    rest.push_str(labels);
    (name, rest, le)
}

fn canonical(text: &str) -> String {
    let mut families: Vec<(String, Vec<&str>, Vec<&str>)> = Vec::new();
    for block in text.split("\n\n") {
        let mut comments = Vec::new();
        let mut samples = Vec::new();
        for line in block.lines().filter(|l| !l.is_empty()) {
            if line.starts_with('#') {
                comments.push(line);
            } else {
                samples.push(line);
            }
        }
        if comments.is_empty() && samples.is_empty() {
            continue;
        }
        // Series in text order, but a histogram's buckets in increasing
        // `le` (text order put `+Inf` first and `10` before `2.5`).
        let mut keyed: Vec<_> = samples.iter().map(|l| (sample_order(l), *l)).collect();
        keyed.sort_by(|((n1, l1, le1), a), ((n2, l2, le2), b)| {
            (n1, l1)
                .cmp(&(n2, l2))
                .then(le1.total_cmp(le2))
                .then(a.cmp(b))
        });
        let samples: Vec<&str> = keyed.into_iter().map(|(_, l)| l).collect();
        let name = comments
            .iter()
            .chain(samples.iter())
            .next()
            .map(|l| {
                l.trim_start_matches("# HELP ")
                    .trim_start_matches("# TYPE ")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        families.push((name, comments, samples));
    }
    families.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(text.len());
    for (_, comments, samples) in families {
        for line in comments.into_iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let mut h = Histogram::default();
        for micros in [0, 5_000, 5_001, 400_000_000] {
            h.observe(micros);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[DURATION_BUCKETS_MICROS.len()], 1);
        assert_eq!(h.count, 4);
        assert_eq!(h.sum_micros, 400_010_001);
    }

    /// The `le` values of each series' buckets in `text`, in order.
    fn bucket_bounds(text: &str) -> Vec<(String, Vec<f64>)> {
        let mut series: Vec<(String, Vec<f64>)> = Vec::new();
        for line in text.lines().filter(|l| l.contains("_bucket{")) {
            let (labels, le) = line.split_once("le=\"").expect("a bucket has le");
            let le = le.split('"').next().expect("le's value");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le is a number")
            };
            match series.iter_mut().find(|(l, _)| l == labels) {
                Some((_, bounds)) => bounds.push(le),
                None => series.push((labels.to_owned(), vec![le])),
            }
        }
        series
    }

    #[test]
    fn histogram_buckets_stay_in_increasing_le() {
        let family = AGENT_RUN_DURATION_SECONDS;
        let mut text = format!("# TYPE {family} histogram\n");
        for agent in ["sms", "email"] {
            for bound in DURATION_BUCKETS_MICROS {
                let le = bound as f64 / 1e6;
                text.push_str(&format!(
                    "{family}_bucket{{agent=\"{agent}\",le=\"{le}\"}} 1\n"
                ));
            }
            text.push_str(&format!(
                "{family}_bucket{{agent=\"{agent}\",le=\"+Inf\"}} 1\n"
            ));
            text.push_str(&format!("{family}_sum{{agent=\"{agent}\"}} 1\n"));
            text.push_str(&format!("{family}_count{{agent=\"{agent}\"}} 1\n"));
        }
        let series = bucket_bounds(&canonical(&text));
        assert_eq!(series.len(), 2, "{series:?}");
        for (labels, bounds) in series {
            assert_eq!(bounds.len(), DURATION_BUCKETS_MICROS.len() + 1, "{labels}");
            assert!(
                bounds.windows(2).all(|w| w[0] < w[1]),
                "{labels}: buckets out of order: {bounds:?}"
            );
        }
    }

    #[test]
    fn canonical_text_sorts_families_and_series() {
        let a = "# TYPE b counter\nb{x=\"2\"} 1\nb{x=\"1\"} 3\n\n# TYPE a gauge\na 1\n\n";
        assert_eq!(
            canonical(a),
            "# TYPE a gauge\na 1\n\n# TYPE b counter\nb{x=\"1\"} 3\nb{x=\"2\"} 1\n\n"
        );
    }

    #[test]
    fn series_labels_round_trip_through_storage() {
        let s = Series {
            family: CONNECTOR_REQUESTS_TOTAL,
            labels: vec![
                ("connector", "gmail".into()),
                ("operation", "send".into()),
                ("status", "failed".into()),
            ],
        };
        assert_eq!(Series::from_stored(s.family, &s.labels_json()).unwrap(), s);
        assert!(Series::from_stored("nope", "[]").is_err());
    }
}
