//! The per-target report: run counts, success rate and duration percentiles
//! for each agent and connector over a time range; and the timeline: runs,
//! failures and percentiles per hour or day.

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
    /// Language-model tokens of prompts: for an agent, those of the
    /// succeeded LLM steps of its runs started in the range (a step counts
    /// to the agent of its parent run); for a connector, those of its own
    /// succeeded calls started in the range.
    pub input_tokens: u64,
    /// Language-model tokens of answers, counted as [`Self::input_tokens`].
    pub output_tokens: u64,
    /// What those language-model calls cost, in US dollars (0 for models
    /// without a price).
    pub cost_usd: f64,
}

/// The most buckets one [`Timeline`] answers.
pub const MAX_TIMELINE_BUCKETS: u64 = 1000;

/// The width of a timeline's buckets, aligned on UTC hours or days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimelineBy {
    /// An hour.
    Hour,
    /// A day (midnight UTC to midnight UTC).
    Day,
}

impl TimelineBy {
    /// `hour` or `day`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimelineBy::Hour => "hour",
            TimelineBy::Day => "day",
        }
    }

    /// The bucket's width in microseconds.
    pub const fn micros(self) -> u64 {
        match self {
            TimelineBy::Hour => 3_600_000_000,
            TimelineBy::Day => 86_400_000_000,
        }
    }
}

impl std::str::FromStr for TimelineBy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hour" => Ok(TimelineBy::Hour),
            "day" => Ok(TimelineBy::Day),
            _ => Err(Error::InvalidInput(format!(
                "by {s:?}: expected hour or day"
            ))),
        }
    }
}

/// What a timeline counts: the runs started in `[from, before)`, of one
/// agent or connector name and one kind when given, per bucket of `by`.
/// The first bucket starts at `from` rounded down to its hour or day; every
/// bucket up to `before` is answered, empty ones with zero runs and no
/// percentiles, at most [`MAX_TIMELINE_BUCKETS`] of them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeline {
    /// The bucket width.
    pub by: TimelineBy,
    /// Runs started at or after this time.
    pub from: Timestamp,
    /// Runs started before this time.
    pub before: Timestamp,
    /// Only runs of this agent or connector.
    pub target: Option<String>,
    /// Only agent runs, or only connector runs.
    pub kind: Option<RunKind>,
}

impl Timeline {
    /// Every run started in `[from, before)`, per `by`.
    pub fn new(by: TimelineBy, from: Timestamp, before: Timestamp) -> Self {
        Self {
            by,
            from,
            before,
            target: None,
            kind: None,
        }
    }

    /// The window a client means by optional ends: up to `until` (default
    /// now), from `since` (default a day before `until` by hour, 30 days by
    /// day).
    pub fn window(by: TimelineBy, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        let before = until.unwrap_or_else(Timestamp::now);
        let span = match by {
            TimelineBy::Hour => 24,
            TimelineBy::Day => 30,
        } * by.micros();
        let from = since.unwrap_or(Timestamp(before.0.saturating_sub(span)));
        Self::new(by, from, before)
    }

    /// Only runs of `target`.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Only runs of `kind`.
    pub fn kind(mut self, kind: RunKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The start of the first bucket and how many buckets the window
    /// holds.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty window or one of more than
    /// [`MAX_TIMELINE_BUCKETS`] buckets, saying to narrow it.
    pub fn buckets(&self) -> Result<(Timestamp, u64)> {
        let width = self.by.micros();
        if self.before <= self.from {
            return Err(Error::InvalidInput(
                "the time window is empty: until must be after since".to_owned(),
            ));
        }
        let start = self.from.0 - self.from.0 % width;
        let count = (self.before.0 - start).div_ceil(width);
        if count > MAX_TIMELINE_BUCKETS {
            return Err(Error::InvalidInput(format!(
                "the time window holds {count} buckets of a{} {}; at most {MAX_TIMELINE_BUCKETS} \
                 are answered: narrow since/until{}",
                if self.by == TimelineBy::Hour { "n" } else { "" },
                self.by.as_str(),
                if self.by == TimelineBy::Hour {
                    " or count by day"
                } else {
                    ""
                },
            )));
        }
        Ok((Timestamp(start), count))
    }
}

/// One bucket of a timeline: the runs started in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimelineBucket {
    /// Where the bucket starts (it lasts an hour or a day).
    pub start: Timestamp,
    /// Runs started in it.
    pub runs: u64,
    /// Of those, failed (terminally).
    pub failures: u64,
    /// Median duration of its finished runs, in microseconds (nearest rank).
    pub p50_micros: Option<u64>,
    /// 95th percentile duration of its finished runs.
    pub p95_micros: Option<u64>,
    /// 99th percentile duration of its finished runs.
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
    let usage = usage(conn, from, before)?;
    let mut out = Vec::with_capacity(by_target.len());
    for ((kind, target), mut acc) in by_target {
        let (input_tokens, output_tokens, cost_usd) = usage
            .get(&(kind.clone(), target.clone()))
            .copied()
            .unwrap_or_default();
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
            input_tokens,
            output_tokens,
            cost_usd,
        });
    }
    Ok(out)
}

/// Input tokens, output tokens and cost in US dollars.
type Usage = (u64, u64, f64);

/// Language-model usage by (kind, target) for runs started in
/// `[from, before)`: each agent's is its runs' steps' (by the step's
/// parent run), each connector's its own calls'. Reads the partial index
/// `agent_runs_with_usage` (rows with a model only).
fn usage(conn: &Connection, from: i64, before: i64) -> Result<BTreeMap<(String, String), Usage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.kind, p.target, SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cost_usd)
         FROM agent_runs c INDEXED BY agent_runs_with_usage
         JOIN agent_runs p ON p.run_id = c.parent_run_id
         WHERE c.model IS NOT NULL AND p.started_at >= ?1 AND p.started_at < ?2
         GROUP BY p.kind, p.target
         UNION ALL
         SELECT kind, target, SUM(input_tokens), SUM(output_tokens), SUM(cost_usd)
         FROM agent_runs INDEXED BY agent_runs_with_usage
         WHERE model IS NOT NULL AND started_at >= ?1 AND started_at < ?2
         GROUP BY kind, target",
    )?;
    let mut rows = stmt.query([from, before])?;
    let mut out: BTreeMap<(String, String), Usage> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let key = (text(row, 0)?.to_owned(), text(row, 1)?.to_owned());
        let sums = out.entry(key).or_default();
        sums.0 += row.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64;
        sums.1 += row.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64;
        sums.2 += row.get::<_, Option<f64>>(4)?.unwrap_or(0.0);
    }
    Ok(out)
}

pub(crate) fn timeline(conn: &Connection, query: &Timeline) -> Result<Vec<TimelineBucket>> {
    let (start, count) = query.buckets()?;
    let width = query.by.micros();
    // A range of the covering index `agent_runs_by_time` (its columns hold
    // the kind, target, status and duration): no row of the table is read.
    let mut stmt = conn.prepare_cached(
        "SELECT started_at, status, duration_micros FROM agent_runs INDEXED BY agent_runs_by_time
         WHERE started_at >= ?1 AND started_at < ?2
         AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR target = ?4)",
    )?;
    let mut rows = stmt.query(rusqlite::params![
        query.from.0 as i64,
        query.before.0 as i64,
        query.kind.map(|k| k.as_str()),
        query.target.as_deref(),
    ])?;
    let mut runs = vec![0u64; count as usize];
    let mut failures = vec![0u64; count as usize];
    let mut durations: Vec<Vec<u64>> = vec![Vec::new(); count as usize];
    let failed = RunStatus::Failed.as_str();
    while let Some(row) = rows.next()? {
        let at = row.get::<_, i64>(0)? as u64;
        let i = ((at.saturating_sub(start.0)) / width) as usize;
        let Some(n) = runs.get_mut(i) else { continue };
        *n += 1;
        if text(row, 1)? == failed {
            failures[i] += 1;
        }
        if let Some(d) = row.get::<_, Option<i64>>(2)? {
            durations[i].push(d as u64);
        }
    }
    Ok(durations
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            d.sort_unstable();
            TimelineBucket {
                start: Timestamp(start.0 + i as u64 * width),
                runs: runs[i],
                failures: failures[i],
                p50_micros: percentile(&d, 0.50),
                p95_micros: percentile(&d, 0.95),
                p99_micros: percentile(&d, 0.99),
            }
        })
        .collect())
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

    #[test]
    fn timeline_windows_are_aligned_and_bounded() {
        let hour = TimelineBy::Hour.micros();
        let t = Timeline::new(TimelineBy::Hour, Timestamp(hour + 5), Timestamp(3 * hour));
        assert_eq!(t.buckets().unwrap(), (Timestamp(hour), 2));
        let t = Timeline::new(TimelineBy::Hour, Timestamp(0), Timestamp(1000 * hour));
        assert_eq!(t.buckets().unwrap().1, 1000);
        let t = Timeline::new(TimelineBy::Hour, Timestamp(0), Timestamp(1000 * hour + 1));
        let err = t.buckets().unwrap_err().to_string();
        assert!(
            err.contains("1001 buckets") && err.contains("narrow"),
            "{err}"
        );
        let t = Timeline::new(TimelineBy::Day, Timestamp(9), Timestamp(9));
        assert!(t.buckets().is_err());
    }
}
