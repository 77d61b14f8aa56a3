//! The completeness check: proves an AgentRun table matches the log, every
//! column of every row and every metric series, with a re-derivation kept
//! apart from the projection's own code.
//!
//! `audit verify` recomputes each run's row from the log independently of
//! the fold the projection uses (`neonhub_events::RunState`), on purpose: it
//! is the check against that fold. Sharing the fold would make a bug in it
//! agree with itself, so this module keeps its own small recomputation
//! ([`expected`]) and must not be rewritten to call the fold.
//!
//! Memory stays bounded: the log is read in pages and the table in batches
//! of rows in the log's order (a row's key is its first position); a run is
//! compared, and forgotten, once the log reaches the last position its row
//! claims. Only runs still open at the checkpoint (and rows that match no
//! run) are held to the end.

mod expected;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use neonhub_events::{Codec, EventStore, Position, RunEvent, RunId};

use self::expected::{Expected, ExpectedMetrics, SeriesValue, series_name};
use self::table::{Keyed, RowCursor, StoredRow};
use crate::agent_runs::{open_for_check, read_checkpoint};
use crate::error::Result;

/// How many mismatches a report lists (it counts them all).
pub const LISTED_MISMATCHES: usize = 100;

/// Events read from the log per page.
const LOG_PAGE: usize = 8192;

/// One difference between the table (or its metrics) and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// A run stream of the log has no row.
    MissingRow {
        /// The run.
        run_id: RunId,
        /// The position of its first event.
        first_position: Position,
    },
    /// A row has no run stream in the log (before the checkpoint).
    UnexpectedRow {
        /// The row's run id, as stored.
        run_id: String,
        /// The row's first position, as stored.
        first_position: Option<Position>,
    },
    /// A column of a row differs from what the log's events give.
    Column {
        /// The run.
        run_id: RunId,
        /// The position of its first event.
        first_position: Position,
        /// The column's name.
        column: &'static str,
        /// The value in the table, as shown.
        table: String,
        /// The value the log gives, as shown.
        log: String,
    },
    /// A metric series differs from what the log's events give.
    Metric {
        /// The series, as Prometheus names it.
        series: String,
        /// The stored value, as shown.
        table: String,
        /// The value the log gives, as shown.
        log: String,
    },
}

impl Mismatch {
    /// The position of the run's first event, for a mismatch of a run the
    /// log holds.
    pub fn first_position(&self) -> Option<Position> {
        match self {
            Mismatch::MissingRow { first_position, .. }
            | Mismatch::Column { first_position, .. } => Some(*first_position),
            _ => None,
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::MissingRow {
                run_id,
                first_position,
            } => write!(
                f,
                "run {run_id} (first event at position {first_position}) has no row"
            ),
            Mismatch::UnexpectedRow {
                run_id,
                first_position,
            } => {
                write!(f, "row for run {run_id}")?;
                if let Some(p) = first_position {
                    write!(f, " (first_position {p})")?;
                }
                write!(f, " has no run stream in the log")
            }
            Mismatch::Column {
                run_id,
                first_position,
                column,
                table,
                log,
            } => write!(
                f,
                "run {run_id} (first event at position {first_position}): {column} is {table} in the table, {log} in the log"
            ),
            Mismatch::Metric { series, table, log } => {
                write!(
                    f,
                    "metric {series} is {table} in the table, {log} in the log"
                )
            }
        }
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The table's checkpoint: the log was compared up to here.
    pub checkpoint: Position,
    /// The log's head when checked.
    pub head: Position,
    /// Run streams in the log before the checkpoint.
    pub runs_in_log: u64,
    /// Rows in the table.
    pub rows: u64,
    /// Metric series compared.
    pub series: u64,
    /// Events of run streams before the checkpoint, every one decoded.
    pub run_events: u64,
    /// The first [`LISTED_MISMATCHES`] differences found, sorted: runs in
    /// the log's order (by their first position), then rows the log does not
    /// know, then metrics.
    pub mismatches: Vec<Mismatch>,
    /// How many differences there are in all.
    pub mismatch_count: u64,
    /// The first position of the earliest run with a difference.
    pub first_bad_position: Option<Position>,
}

impl VerifyReport {
    /// Whether the table matches the log it has seen, and its checkpoint is
    /// not past the log's head.
    pub fn matches(&self) -> bool {
        self.mismatch_count == 0 && !self.is_ahead()
    }

    /// The first difference listed.
    pub fn first_mismatch(&self) -> Option<&Mismatch> {
        self.mismatches.first()
    }

    /// Whether the table's checkpoint is past the log's head: the table saw
    /// events this log does not hold (an older log restored, a cut tail).
    pub fn is_ahead(&self) -> bool {
        self.checkpoint > self.head
    }

    /// How many positions the table is behind the head (0 when caught up or
    /// ahead; on the embedded log, positions are events).
    pub fn behind(&self) -> u64 {
        self.head.0.saturating_sub(self.checkpoint.0)
    }

    /// Matches and is caught up with the head.
    pub fn is_complete(&self) -> bool {
        self.matches() && self.behind() == 0
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ahead() {
            write!(
                f,
                "AHEAD: the table's checkpoint {} is past the log's head {}; ",
                self.checkpoint, self.head
            )?;
        }
        match self.mismatch_count {
            0 => write!(
                f,
                "ok: {} rows match {} runs of the log, {} metric series match",
                self.rows, self.runs_in_log, self.series
            )?,
            n => {
                write!(f, "MISMATCH: {n} difference(s)")?;
                if let Some(m) = self.first_mismatch() {
                    write!(f, ", the first: {m}")?;
                }
            }
        }
        if self.behind() == 0 {
            if !self.is_ahead() {
                write!(f, "; checkpoint {} is the head", self.checkpoint)?;
            }
            Ok(())
        } else {
            write!(
                f,
                "; checkpoint {} is {} behind the head {}",
                self.checkpoint,
                self.behind(),
                self.head
            )
        }
    }
}

/// Collects mismatches: the first few listed, all counted.
#[derive(Default)]
struct Found {
    listed: Vec<Mismatch>,
    count: u64,
    first_bad_position: Option<Position>,
}

impl Found {
    fn push(&mut self, m: Mismatch) {
        self.count += 1;
        if let Some(p) = m.first_position() {
            self.first_bad_position = Some(self.first_bad_position.map_or(p, |q| q.min(p)));
        }
        if self.listed.len() < LISTED_MISMATCHES {
            self.listed.push(m);
        }
    }
}

/// The walk over the log, with the rows read so far that wait for their run.
struct Walk {
    conn: rusqlite::Connection,
    cursor: RowCursor,
    /// Runs seen in the log and not yet compared.
    open: HashMap<RunId, Expected>,
    /// Rows read and not yet compared.
    rows: HashMap<RunId, StoredRow>,
    metrics: ExpectedMetrics,
    found: Found,
    runs: u64,
    run_events: u64,
    batch: Vec<Keyed>,
}

impl Walk {
    /// Reads the rows whose key is at most `upto` (`None`: the rest).
    fn read_rows(&mut self, upto: Option<Position>) -> Result<()> {
        self.cursor.read_upto(&self.conn, upto, &mut self.batch)?;
        self.take_batch();
        Ok(())
    }

    /// Moves the rows just read into `rows`.
    fn take_batch(&mut self) {
        for keyed in self.batch.drain(..) {
            match keyed {
                Ok((run_id, row)) => {
                    if let Some(old) = self.rows.insert(run_id, row) {
                        self.found.push(Mismatch::UnexpectedRow {
                            run_id: run_id.to_string(),
                            first_position: old.first_position(),
                        });
                    }
                }
                Err((run_id, row)) => self.found.push(Mismatch::UnexpectedRow {
                    run_id,
                    first_position: row.first_position(),
                }),
            }
        }
    }

    /// Takes the event at `position` of run `run_id` into account, and
    /// compares the run once the log reaches the last position its row
    /// claims.
    async fn event(
        &mut self,
        store: &dyn EventStore,
        codec: &Codec,
        run_id: RunId,
        position: Position,
        event: RunEvent,
    ) -> Result<()> {
        match (self.open.get_mut(&run_id), event) {
            (Some(run), event) => {
                let transition = run.apply(event, position);
                self.metrics.record(run, transition);
            }
            (None, RunEvent::Started(s)) if s.attempt == 1 => {
                self.runs += 1;
                self.metrics.started();
                self.open.insert(run_id, Expected::start(s, position));
            }
            (None, event) => {
                // A run compared already, its row claiming an earlier last
                // position than the log holds: recompute it from its stream
                // and compare it again at the end.
                let rebuilt = match rebuild_run(store, codec, run_id, position).await {
                    // A run begun in the archived part of the log: its row
                    // is not compared (see `verify_from`).
                    Err(crate::Error::Store(neonhub_events::Error::Archived { .. })) => {
                        return Ok(());
                    }
                    other => other?,
                };
                let Some(mut run) = rebuilt else {
                    return Ok(());
                };
                let transition = run.apply(event, position);
                self.metrics.record(&run, transition);
                self.open.insert(run_id, run);
                return Ok(());
            }
        }
        let Some(row) = self.rows.get(&run_id) else {
            return Ok(());
        };
        if row.last_position() == Some(position) {
            let row = self.rows.remove(&run_id).expect("present");
            let run = self.open.remove(&run_id).expect("present");
            table::compare(&run, &row, &mut |m| self.found.push(m));
        }
        Ok(())
    }

    /// After the checkpoint: compares what is left, names rows without a
    /// run and runs without a row.
    fn finish(&mut self) -> Result<()> {
        // The rows read and not compared yet, then the rest of the table a
        // batch at a time (rows past the checkpoint, or whose key was
        // edited): each matched with an open run, or unexpected.
        self.match_rows();
        while self.cursor.read_rest_batch(&self.conn, &mut self.batch)? {
            self.take_batch();
            self.match_rows();
        }
        let mut open: Vec<Expected> = self.open.drain().map(|(_, run)| run).collect();
        open.sort_by_key(|r| r.first_position);
        for run in open {
            match table::load(&self.conn, run.run_id)? {
                Some(row) => table::compare(&run, &row, &mut |m| self.found.push(m)),
                None => self.found.push(Mismatch::MissingRow {
                    run_id: run.run_id,
                    first_position: run.first_position,
                }),
            }
        }
        Ok(())
    }

    /// Compares every row read with its open run; a row without one is
    /// unexpected.
    fn match_rows(&mut self) {
        let mut rows: Vec<(RunId, StoredRow)> = self.rows.drain().collect();
        rows.sort_by_key(|(_, r)| r.first_position());
        for (run_id, row) in rows {
            match self.open.remove(&run_id) {
                Some(run) => table::compare(&run, &row, &mut |m| self.found.push(m)),
                None => self.found.push(Mismatch::UnexpectedRow {
                    run_id: run_id.to_string(),
                    first_position: row.first_position(),
                }),
            }
        }
    }

    /// Compares every metric series with the stored ones.
    fn compare_metrics(&mut self) -> Result<u64> {
        let (mut stored, in_flight) = table::stored_metrics(&self.conn)?;
        let expected = std::mem::take(&mut self.metrics.series);
        let series = expected.len() as u64 + 1;
        for (key, value) in &expected {
            let table = stored.remove(key);
            if table.as_ref() != Some(value) {
                self.found.push(Mismatch::Metric {
                    series: series_name(key),
                    table: table::show_series(table.as_ref()),
                    log: table::show_series(Some(value)),
                });
            }
        }
        let mut extra: Vec<_> = stored.into_iter().collect();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in extra {
            self.found.push(Mismatch::Metric {
                series: series_name(&key),
                table: table::show_series(Some(&value)),
                log: table::show_series(None),
            });
        }
        let log = self.metrics.in_flight;
        if in_flight.unwrap_or(0) != log {
            self.found.push(Mismatch::Metric {
                series: crate::metrics::RUNS_IN_FLIGHT.to_owned(),
                table: table::show_series(in_flight.map(SeriesValue::Count).as_ref()),
                log: log.to_string(),
            });
        }
        Ok(series)
    }
}

/// Recomputes run `run_id` from its stream, from its events before `before`.
async fn rebuild_run(
    store: &dyn EventStore,
    codec: &Codec,
    run_id: RunId,
    before: Position,
) -> Result<Option<Expected>> {
    let events = store
        .read_stream(
            &run_id.stream(),
            neonhub_events::Direction::Forwards,
            neonhub_events::ReadFrom::Start,
            usize::MAX,
        )
        .await?;
    let mut run: Option<Expected> = None;
    for recorded in events.iter().filter(|e| e.position < before) {
        let event = codec.decode(recorded)?;
        match (&mut run, event) {
            (Some(run), event) => {
                run.apply(event, recorded.position);
            }
            (None, RunEvent::Started(s)) => run = Some(Expected::start(s, recorded.position)),
            (None, _) => {}
        }
    }
    Ok(run)
}

/// Checks the AgentRun table in `db` against `store`: every run stream of
/// the log up to the table's checkpoint has exactly one row, no row lacks a
/// stream, every column of every row and every metric series equals what the
/// log's events give; and where the checkpoint stands against the head
/// (behind, or past it: [`VerifyReport::is_ahead`]).
///
/// It reads the log in pages and the table in batches, and holds only the
/// runs still open (see the module docs).
///
/// # Errors
/// Store and SQLite errors; an event that does not decode (a store
/// [`neonhub_events::Error::Decode`]).
pub async fn verify(store: &dyn EventStore, db: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_from(store, db, Position::START).await
}

/// [`verify`] of the part of the table whose runs begin at or after
/// `start`, the first position still in a log whose older segments were
/// archived (`neonhub log archive`). Rows of runs that begin before it keep
/// their place in the table and are not compared (their events are in the
/// archive), nor are events of those runs after `start`; the metric series,
/// which count the archived runs too, are not compared (`series` is 0).
/// With `start` at 0 this is [`verify`].
///
/// # Errors
/// As [`verify`].
pub async fn verify_from(
    store: &dyn EventStore,
    db: impl AsRef<Path>,
    start: Position,
) -> Result<VerifyReport> {
    let conn = open_for_check(db.as_ref())?;
    // One read transaction: rows, metrics and checkpoint as of one commit.
    conn.execute_batch("BEGIN")?;
    let checkpoint = read_checkpoint(&conn)?;
    let head = store.head().await?;
    let codec = Codec::new();
    let mut walk = Walk {
        conn,
        cursor: RowCursor::starting_at(start),
        open: HashMap::new(),
        rows: HashMap::new(),
        metrics: ExpectedMetrics::default(),
        found: Found::default(),
        runs: 0,
        run_events: 0,
        batch: Vec::new(),
    };
    let mut from = start;
    'read: while from < checkpoint {
        let page = store.read_all(from, LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.position.next();
        walk.read_rows(Some(last.position.min(checkpoint)))?;
        for recorded in page {
            if recorded.position >= checkpoint {
                break 'read;
            }
            let Some(run_id) = recorded.stream.run_id() else {
                continue;
            };
            let event = codec.decode(&recorded)?;
            walk.run_events += 1;
            walk.event(store, &codec, run_id, recorded.position, event)
                .await?;
        }
    }
    walk.finish()?;
    let series = if start == Position::START {
        walk.compare_metrics()?
    } else {
        0
    };
    // Runs in log order (each run's columns in table order), then rows the
    // log does not know, then metrics.
    walk.found.listed.sort_by_key(|m| match m {
        Mismatch::MissingRow { first_position, .. } | Mismatch::Column { first_position, .. } => {
            (0, *first_position)
        }
        Mismatch::UnexpectedRow { first_position, .. } => (1, first_position.unwrap_or_default()),
        _ => (2, Position::START),
    });
    let rows = table::row_count(&walk.conn)?;
    walk.conn.execute_batch("COMMIT")?;
    Ok(VerifyReport {
        checkpoint,
        head,
        runs_in_log: walk.runs,
        rows,
        series,
        run_events: walk.run_events,
        mismatches: walk.found.listed,
        mismatch_count: walk.found.count,
        first_bad_position: walk.found.first_bad_position,
    })
}
