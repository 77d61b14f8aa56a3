//! The reporting commands' output formats (`--format table|json|jsonl|csv`):
//! runs written page by page, so a listing of every run keeps its memory
//! flat, and the CSV and JSON Lines forms of runs, reports and buckets.
//! Everything goes out through `print!`, so a closed pipe ends the command
//! quietly (`src/main.rs`).

use neonhub_projections::{AgentRun, Cursor, TargetReport, TimelineBucket};
use serde::Serialize;

use super::table;
use crate::cli::OutputFormat;
use crate::config::format_time;
use crate::view::{BucketView, ReportView, RunView};

/// The CSV columns of a run.
const RUN_COLUMNS: [&str; 18] = [
    "run_id",
    "parent_run_id",
    "correlation_id",
    "kind",
    "target",
    "operation",
    "intent",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
    "error_kind",
    "error_message",
    "input",
    "output",
    "first_position",
    "last_position",
];

fn ms(micros: Option<u64>) -> String {
    micros.map_or_else(String::new, |m| (m as f64 / 1000.0).to_string())
}

/// A run as a CSV record, in [`RUN_COLUMNS`] order.
fn run_record(run: &AgentRun) -> Vec<String> {
    vec![
        run.run_id.to_string(),
        run.parent_run_id.map(|p| p.to_string()).unwrap_or_default(),
        run.correlation_id.to_string(),
        run.kind.to_string(),
        run.target.clone(),
        run.operation.clone(),
        run.intent.clone().unwrap_or_default(),
        run.status.to_string(),
        run.attempts.to_string(),
        format_time(run.started_at),
        run.finished_at.map(format_time).unwrap_or_default(),
        ms(run.duration_micros),
        run.error
            .as_ref()
            .map(|e| e.kind.to_string())
            .unwrap_or_default(),
        run.error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
        run.input.to_string(),
        run.output
            .as_ref()
            .map(|o| o.to_string())
            .unwrap_or_default(),
        run.first_position.0.to_string(),
        run.last_position.0.to_string(),
    ]
}

/// Prints CSV records, with `header` first when given.
pub(super) fn print_csv(header: Option<&[&str]>, records: impl IntoIterator<Item = Vec<String>>) {
    let mut csv = csv::Writer::from_writer(Vec::new());
    // Writing to memory fails only on a record of another length, which
    // these columns never are.
    if let Some(header) = header {
        let _ = csv.write_record(header);
    }
    for record in records {
        let _ = csv.write_record(&record);
    }
    let bytes = csv.into_inner().unwrap_or_default();
    print!("{}", String::from_utf8_lossy(&bytes));
}

/// Prints one compact JSON object per line.
pub(super) fn print_jsonl<T: Serialize>(values: impl IntoIterator<Item = T>) {
    for value in values {
        if let Ok(line) = serde_json::to_string(&value) {
            println!("{line}");
        }
    }
}

/// Prints runs as CSV with a header.
pub(super) fn runs_csv(runs: &[AgentRun]) {
    print_csv(Some(&RUN_COLUMNS[..]), runs.iter().map(run_record));
}

/// Prints reports as CSV with a header.
pub(super) fn reports_csv(reports: &[TargetReport]) {
    let records = reports.iter().map(|r| {
        vec![
            r.target.clone(),
            r.kind.to_string(),
            r.runs.to_string(),
            r.succeeded.to_string(),
            r.failed.to_string(),
            r.running.to_string(),
            r.success_rate.map(|s| s.to_string()).unwrap_or_default(),
            ms(r.p50_micros),
            ms(r.p95_micros),
            ms(r.p99_micros),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cost_usd.to_string(),
        ]
    });
    let header = [
        "target",
        "kind",
        "runs",
        "succeeded",
        "failed",
        "running",
        "success_rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ];
    print_csv(Some(&header[..]), records);
}

/// Prints reports one JSON object per line.
pub(super) fn reports_jsonl(reports: &[TargetReport]) {
    print_jsonl(reports.iter().map(ReportView::from));
}

/// Prints timeline buckets as CSV with a header.
pub(super) fn buckets_csv(buckets: &[TimelineBucket]) {
    let records = buckets.iter().map(|b| {
        vec![
            format_time(b.start),
            b.runs.to_string(),
            b.failures.to_string(),
            ms(b.p50_micros),
            ms(b.p95_micros),
            ms(b.p99_micros),
        ]
    });
    let header = ["start", "runs", "failures", "p50_ms", "p95_ms", "p99_ms"];
    print_csv(Some(&header[..]), records);
}

/// Prints timeline buckets one JSON object per line.
pub(super) fn buckets_jsonl(buckets: &[TimelineBucket]) {
    print_jsonl(buckets.iter().map(BucketView::from));
}

/// Writes a list of runs page by page in one format: the header (table,
/// CSV) or the opening (JSON) once, each page as it comes, and the end
/// with the next page's cursor.
pub(super) struct RunsOutput {
    format: OutputFormat,
    /// Runs written so far.
    written: usize,
    /// Whether the JSON opening is out.
    opened: bool,
    /// The table's column widths so far (they only grow).
    widths: Vec<usize>,
}

impl RunsOutput {
    pub(super) fn new(format: OutputFormat) -> Self {
        Self {
            format,
            written: 0,
            opened: false,
            widths: Vec::new(),
        }
    }

    /// Writes one page of runs.
    pub(super) fn page(&mut self, runs: &[AgentRun]) {
        let first = self.written == 0;
        match self.format {
            OutputFormat::Table => {
                let rows: Vec<Vec<String>> = runs.iter().map(table::run_row).collect();
                let text = table::Table::with_rows(table::RUN_HEADERS, rows)
                    .render_growing(&mut self.widths, first);
                print!("{text}");
            }
            OutputFormat::Json => {
                if !self.opened {
                    print!("{{\n  \"runs\": [");
                    self.opened = true;
                }
                for (i, run) in runs.iter().enumerate() {
                    let comma = if first && i == 0 { "" } else { "," };
                    let json = serde_json::to_string(&RunView::from(run)).unwrap_or_default();
                    print!("{comma}\n    {json}");
                }
            }
            OutputFormat::Jsonl => print_jsonl(runs.iter().map(RunView::from)),
            OutputFormat::Csv => print_csv(
                first.then_some(&RUN_COLUMNS[..]),
                runs.iter().map(run_record),
            ),
        }
        self.written += runs.len();
    }

    /// Ends the list: `next` is where the next page starts (`None` when
    /// no more runs match). JSON carries it in `next_cursor`; the other
    /// formats say it on stderr.
    pub(super) fn finish(self, next: Option<Cursor>) {
        match self.format {
            OutputFormat::Json => {
                if !self.opened {
                    print!("{{\n  \"runs\": [");
                }
                let next = serde_json::to_string(&next.map(|c| c.to_string()))
                    .unwrap_or_else(|_| "null".to_owned());
                println!("\n  ],\n  \"next_cursor\": {next}\n}}");
            }
            OutputFormat::Table if self.written == 0 => {
                print!("{}", table::Table::new(table::RUN_HEADERS).render());
                note_next(next);
            }
            _ => note_next(next),
        }
    }
}

/// Tells, on stderr, how to get the next page.
fn note_next(next: Option<Cursor>) {
    if let Some(next) = next {
        eprintln!("next cursor: {next} (more runs match: add --cursor {next}, or use --all)");
    }
}
