//! The per-target report: run counts, success rate and duration percentiles
//! for each agent and connector over a time range.

use std::collections::BTreeMap;

use neonhub_events::{RunKind, RunStatus, Timestamp};
use rusqlite::Connection;

use crate::agent_runs::parse_kind;
use crate::error::{Error, Result};

/// The figures of one agent or connector over a time range (runs started in
/// it).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetReport {
    /// Agent or connector.
    pub kind: RunKind,
    /// The agent or connector name.
    pub target: String,
    /// Runs started in the range.
    pub runs: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// Of those, failed (terminally).
    pub failed: u64,
    /// Of those, still running.
    pub running: u64,
    /// `succeeded / (succeeded + failed)`: finished runs only; `None` when
    /// none finished.
    pub success_rate: Option<f64>,
    /// Median duration of finished runs, in microseconds (nearest rank).
    pub p50_micros: Option<u64>,
    /// 95th percentile duration of finished runs, in microseconds.
    pub p95_micros: Option<u64>,
    /// 99th percentile duration of finished runs, in microseconds.
    pub p99_micros: Option<u64>,
}

/// The nearest-rank percentile `p` (0 < p <= 1) of sorted `values`.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn text<'a>(row: &'a rusqlite::Row<'_>, idx: usize) -> Result<&'a str> {
    row.get_ref(idx)?.as_str().map_err(|e| {
        Error::Sqlite(rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

#[derive(Default)]
struct Acc {
    runs: u64,
    succeeded: u64,
    failed: u64,
    running: u64,
    durations: Vec<u64>,
}

pub(crate) fn report(
    conn: &Connection,
    from: Option<Timestamp>,
    before: Option<Timestamp>,
) -> Result<Vec<TargetReport>> {
    // Reads the covering index `agent_runs_by_time` only.
    let mut stmt = conn.prepare_cached(
        "SELECT kind, target, status, duration_micros FROM agent_runs INDEXED BY agent_runs_by_time
         WHERE started_at >= ?1 AND started_at < ?2",
    )?;
    let from = from.map_or(i64::MIN, |t| t.0 as i64);
    let before = before.map_or(i64::MAX, |t| t.0 as i64);
    let mut rows = stmt.query([from, before])?;
    let mut by_target: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut key = (String::new(), String::new());
    while let Some(row) = rows.next()? {
        let kind = text(row, 0)?;
        let target = text(row, 1)?;
        if key.0 != kind || key.1 != target {
            key = (kind.to_owned(), target.to_owned());
        }
        let acc = match by_target.get_mut(&key) {
            Some(acc) => acc,
            None => by_target.entry(key.clone()).or_default(),
        };
        acc.runs += 1;
        let status = text(row, 2)?;
        let status = status.parse::<RunStatus>().map_err(|e| Error::CorruptRow {
            run_id: format!("(a run of {})", key.1),
            reason: e.to_string(),
        })?;
        match status {
            RunStatus::Succeeded => acc.succeeded += 1,
            RunStatus::Failed => acc.failed += 1,
            RunStatus::Running => acc.running += 1,
        }
        if let Some(d) = row.get::<_, Option<i64>>(3)? {
            acc.durations.push(d as u64);
        }
    }
    let mut out = Vec::with_capacity(by_target.len());
    for ((kind, target), mut acc) in by_target {
        acc.durations.sort_unstable();
        let finished = acc.succeeded + acc.failed;
        out.push(TargetReport {
            kind: parse_kind(&kind).ok_or_else(|| Error::CorruptRow {
                run_id: format!("(a run of {target})"),
                reason: format!("kind {kind:?}"),
            })?,
            target,
            runs: acc.runs,
            succeeded: acc.succeeded,
            failed: acc.failed,
            running: acc.running,
            success_rate: (finished > 0).then(|| acc.succeeded as f64 / finished as f64),
            p50_micros: percentile(&acc.durations, 0.50),
            p95_micros: percentile(&acc.durations, 0.95),
            p99_micros: percentile(&acc.durations, 0.99),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
