//! Aligned text tables for the commands' `--format table` output.

use std::fmt::Write as _;

use neonhub_projections::{AgentRun, TargetReport};

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
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (cell, w) in cells.zip(&widths) {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, &mut self.headers.iter().copied());
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

/// The runs as a table: id, target, status, attempts, duration, result.
pub(crate) fn runs_table(runs: &[AgentRun]) -> String {
    let mut table = Table::new(&[
        "RUN ID",
        "KIND",
        "TARGET",
        "OPERATION",
        "STATUS",
        "ATTEMPTS",
        "STARTED",
        "DURATION",
        "RESULT",
    ]);
    for run in runs {
        let result = match (&run.error, &run.output) {
            (Some(e), _) => format!("{}: {}", e.kind, e.message),
            (None, Some(output)) => output.to_string(),
            (None, None) => String::new(),
        };
        table.row(vec![
            run.run_id.to_string(),
            run.kind.to_string(),
            run.target.clone(),
            run.operation.clone(),
            run.status.to_string(),
            run.attempts.to_string(),
            format_time(run.started_at),
            ms(run.duration_micros),
            result,
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
