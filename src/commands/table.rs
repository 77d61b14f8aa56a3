//! Aligned text tables for the commands' `--format table` output.

use std::fmt::Write as _;

use std::collections::HashMap;

use neonhub_events::RunId;
use neonhub_projections::{AgentRun, TargetReport, TimelineBucket};

use crate::config::format_time;

/// Cells longer than this are cut with an ellipsis.
const MAX_CELL: usize = 48;

/// A table of text cells under a header row.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// A table of `rows` under `headers`.
    pub(crate) fn with_rows(headers: &[&'static str], rows: Vec<Vec<String>>) -> Self {
        let mut table = Self::new(headers);
        for row in rows {
            table.row(row);
        }
        table
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| {
                    let c = c.replace('\n', " ");
                    if c.chars().count() > MAX_CELL {
                        let cut: String = c.chars().take(MAX_CELL - 1).collect();
                        format!("{cut}…")
                    } else {
                        c
                    }
                })
                .collect(),
        );
    }

    pub(crate) fn render(&self) -> String {
        self.render_growing(&mut Vec::new(), true)
    }

    /// Renders the rows with columns at least `widths` wide (widened to
    /// fit, and kept for the next page), the header row only when
    /// `header`: a table printed page by page.
    pub(crate) fn render_growing(&self, widths: &mut Vec<usize>, header: bool) -> String {
        widths.resize(self.headers.len(), 0);
        for (w, h) in widths.iter_mut().zip(&self.headers) {
            *w = (*w).max(h.len());
        }
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let widths = &*widths;
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (cell, w) in cells.zip(widths.iter()) {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        if header {
            line(&mut out, &mut self.headers.iter().copied());
        }
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(String::as_str));
        }
        out
    }
}

fn ms(micros: Option<u64>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |m| format!("{:.1} ms", m as f64 / 1000.0),
    )
}

/// The columns of [`runs_table`].
pub(crate) const RUN_HEADERS: &[&str] = &[
    "RUN ID",
    "KIND",
    "TARGET",
    "OPERATION",
    "STATUS",
    "ATTEMPTS",
    "STARTED",
    "DURATION",
    "RESULT",
];

/// A run's cells in [`RUN_HEADERS`] order.
pub(crate) fn run_row(run: &AgentRun) -> Vec<String> {
    let result = match (&run.error, &run.output) {
        (Some(e), _) => format!("{}: {}", e.kind, e.message),
        (None, Some(output)) => output.to_string(),
        (None, None) => String::new(),
    };
    vec![
        run.run_id.to_string(),
        run.kind.to_string(),
        run.target.clone(),
        run.operation.clone(),
        run.status.to_string(),
        run.attempts.to_string(),
        format_time(run.started_at),
        ms(run.duration_micros),
        result,
    ]
}

/// The runs as a table: id, target, status, attempts, duration, result.
pub(crate) fn runs_table(runs: &[AgentRun]) -> String {
    Table::with_rows(RUN_HEADERS, runs.iter().map(run_row).collect()).render()
}

/// The runs of one request as an indented tree: each run under its
/// parent (children in log order), with its status, target, operation,
/// duration and error kind. A run whose parent is not among `runs` is a
/// root.
pub(crate) fn tree_table(runs: &[AgentRun]) -> String {
    let ids: std::collections::HashSet<RunId> = runs.iter().map(|r| r.run_id).collect();
    let mut children: HashMap<RunId, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        match run.parent_run_id.filter(|p| ids.contains(p)) {
            Some(parent) => children.entry(parent).or_default().push(i),
            None => roots.push(i),
        }
    }
    let mut table = Table::new(&["RUN", "STATUS", "TARGET", "OPERATION", "DURATION", "ERROR"]);
    // Depth first, each run before its children; roots and siblings in
    // log order (`runs` is in first-position order).
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let run = &runs[i];
        let branch = if depth == 0 { "" } else { "└─ " };
        table.row(vec![
            format!(
                "{}{branch}{}",
                "   ".repeat(depth.saturating_sub(1)),
                run.run_id
            ),
            run.status.to_string(),
            format!("{} {}", run.kind, run.target),
            run.operation.clone(),
            ms(run.duration_micros),
            run.error
                .as_ref()
                .map(|e| e.kind.to_string())
                .unwrap_or_default(),
        ]);
        if let Some(kids) = children.get(&run.run_id) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    table.render()
}

/// A timeline as a table: one line per bucket.
pub(crate) fn timeline_table(buckets: &[TimelineBucket]) -> String {
    let mut table = Table::new(&["START", "RUNS", "FAILURES", "P50", "P95", "P99"]);
    for b in buckets {
        table.row(vec![
            format_time(b.start),
            b.runs.to_string(),
            b.failures.to_string(),
            ms(b.p50_micros),
            ms(b.p95_micros),
            ms(b.p99_micros),
        ]);
    }
    table.render()
}

/// The per-target report as a table.
pub(crate) fn report_table(reports: &[TargetReport]) -> String {
    let mut table = Table::new(&[
        "TARGET",
        "KIND",
        "RUNS",
        "SUCCEEDED",
        "FAILED",
        "RUNNING",
        "SUCCESS",
        "P50",
        "P95",
        "P99",
        "TOKENS IN",
        "TOKENS OUT",
        "COST USD",
    ]);
    for r in reports {
        table.row(vec![
            r.target.clone(),
            r.kind.to_string(),
            r.runs.to_string(),
            r.succeeded.to_string(),
            r.failed.to_string(),
            r.running.to_string(),
            r.success_rate
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            ms(r.p50_micros),
            ms(r.p95_micros),
            ms(r.p99_micros),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            format!("{:.6}", r.cost_usd),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let mut table = Table::new(&["A", "BB"]);
        table.row(vec!["xyz".into(), "1".into()]);
        table.row(vec!["q".repeat(100), "2".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].find("BB"), lines[1].find('1'));
        assert!(lines[2].contains('…') && lines[2].chars().count() < 60);
    }
}
