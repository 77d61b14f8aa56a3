//! The completeness check: proves an AgentRun table matches the log, with a
//! re-derivation of each run's status and attempts kept apart from the
//! projection's own code.
//!
//! `audit verify` recomputes each run's row from the log independently of
//! the fold the projection uses (`neonhub_events::RunState`), on purpose: it
//! is the check against that fold. Sharing the fold would make a bug in it
//! agree with itself, so this module keeps its own small recomputation
//! ([`Expected`]) and must not be rewritten to call the fold.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use neonhub_events::{Codec, EventStore, Position, RunEvent, RunId, StepOutcome};

use crate::agent_runs::{AgentRun, RunStatus, open_connection, read_checkpoint};
use crate::error::Result;
use crate::query::all_runs;

/// The first difference between the table and the log.
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
        /// The row's run.
        run_id: RunId,
    },
    /// A row's status differs from what the log's events give.
    Status {
        /// The run.
        run_id: RunId,
        /// In the table.
        table: RunStatus,
        /// From the log.
        log: RunStatus,
    },
    /// A row's attempts differ from what the log's events give.
    Attempts {
        /// The run.
        run_id: RunId,
        /// In the table.
        table: u32,
        /// From the log.
        log: u32,
    },
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
            Mismatch::UnexpectedRow { run_id } => {
                write!(f, "row for run {run_id} has no run stream in the log")
            }
            Mismatch::Status { run_id, table, log } => {
                write!(
                    f,
                    "run {run_id}: status {table} in the table, {log} in the log"
                )
            }
            Mismatch::Attempts { run_id, table, log } => {
                write!(
                    f,
                    "run {run_id}: {table} attempts in the table, {log} in the log"
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
    /// The first difference, in log order (rows the log does not know last).
    pub first_mismatch: Option<Mismatch>,
}

impl VerifyReport {
    /// Whether the table matches the log it has seen.
    pub fn matches(&self) -> bool {
        self.first_mismatch.is_none()
    }

    /// How many positions the table is behind the head (0 when caught up;
    /// on the embedded log, positions are events).
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
        match &self.first_mismatch {
            Some(m) => write!(f, "MISMATCH: {m}")?,
            None => write!(
                f,
                "ok: {} rows match {} runs of the log",
                self.rows, self.runs_in_log
            )?,
        }
        if self.behind() == 0 {
            write!(f, "; checkpoint {} is the head", self.checkpoint)
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

/// What the log's events give for one run, recomputed here (see the module
/// docs).
struct Expected {
    first_position: Position,
    status: RunStatus,
    attempts: u32,
}

impl Expected {
    /// A run whose first event is at `first_position`.
    fn new(first_position: Position) -> Self {
        Self {
            first_position,
            status: RunStatus::Running,
            attempts: 0,
        }
    }

    /// Takes the run's next event into account.
    fn apply(&mut self, event: RunEvent) {
        match event {
            RunEvent::Started(s) => {
                // An agent run that ended in_doubt runs again once its step
                // is resolved.
                self.status = RunStatus::Running;
                self.attempts = self.attempts.max(s.attempt);
            }
            RunEvent::Succeeded(_) => self.status = RunStatus::Succeeded,
            RunEvent::Failed(f) if !f.will_retry => self.status = RunStatus::Failed,
            RunEvent::StepResolved(r) => {
                self.status = match r.outcome {
                    StepOutcome::Sent => RunStatus::Succeeded,
                    StepOutcome::NotSent => RunStatus::Running,
                }
            }
            _ => {}
        }
    }
}

/// Checks the AgentRun table in `db` against `store`: every run stream of
/// the log up to the table's checkpoint has exactly one row, no row lacks a
/// stream, every row's status and attempts equal what the log's events give,
/// and how far the checkpoint is behind the head.
///
/// # Errors
/// Store and SQLite errors; an event that does not decode (a store
/// [`neonhub_events::Error::Decode`]).
pub async fn verify(store: &dyn EventStore, db: impl AsRef<Path>) -> Result<VerifyReport> {
    let conn = open_connection(db.as_ref(), true)?;
    let checkpoint = read_checkpoint(&conn)?;
    let head = store.head().await?;
    let expected = expected_from_log(store, checkpoint).await?;
    let rows = all_runs(&conn)?;
    let (mut mismatches, seen) = row_mismatches(&rows, &expected);
    if seen < expected.len() as u64 {
        missing_rows(&rows, &expected, &mut mismatches);
    }
    let first_mismatch = mismatches
        .into_iter()
        .min_by_key(|(p, m)| (*p, m.to_string()))
        .map(|(_, m)| m);
    Ok(VerifyReport {
        checkpoint,
        head,
        runs_in_log: expected.len() as u64,
        rows: rows.len() as u64,
        first_mismatch,
    })
}

/// Recomputes every run of the log before `checkpoint` from its events.
async fn expected_from_log(
    store: &dyn EventStore,
    checkpoint: Position,
) -> Result<HashMap<RunId, Expected>> {
    let codec = Codec::new();
    let mut expected: HashMap<RunId, Expected> = HashMap::new();
    let mut from = Position::START;
    'read: loop {
        let batch = store.read_all(from, 8192).await?;
        let Some(last) = batch.last() else { break };
        from = last.position.next();
        for recorded in &batch {
            if recorded.position >= checkpoint {
                break 'read;
            }
            let Some(run_id) = recorded.stream.run_id() else {
                continue;
            };
            let event = codec.decode(recorded)?;
            expected
                .entry(run_id)
                .or_insert_with(|| Expected::new(recorded.position))
                .apply(event);
        }
    }
    Ok(expected)
}

/// The rows that differ from the log (each with the position it sorts at),
/// and how many rows the log knows.
fn row_mismatches(
    rows: &[AgentRun],
    expected: &HashMap<RunId, Expected>,
) -> (Vec<(Position, Mismatch)>, u64) {
    let mut mismatches: Vec<(Position, Mismatch)> = Vec::new();
    let mut seen = 0u64;
    for row in rows {
        match expected.get(&row.run_id) {
            None => mismatches.push((
                Position(u64::MAX),
                Mismatch::UnexpectedRow { run_id: row.run_id },
            )),
            Some(e) => {
                seen += 1;
                if e.status != row.status {
                    mismatches.push((
                        e.first_position,
                        Mismatch::Status {
                            run_id: row.run_id,
                            table: row.status,
                            log: e.status,
                        },
                    ));
                } else if e.attempts != row.attempts {
                    mismatches.push((
                        e.first_position,
                        Mismatch::Attempts {
                            run_id: row.run_id,
                            table: row.attempts,
                            log: e.attempts,
                        },
                    ));
                }
            }
        }
    }
    (mismatches, seen)
}

/// Adds to `mismatches` every run of the log that has no row.
fn missing_rows(
    rows: &[AgentRun],
    expected: &HashMap<RunId, Expected>,
    mismatches: &mut Vec<(Position, Mismatch)>,
) {
    let have: std::collections::HashSet<RunId> = rows.iter().map(|r| r.run_id).collect();
    for (run_id, e) in expected {
        if !have.contains(run_id) {
            mismatches.push((
                e.first_position,
                Mismatch::MissingRow {
                    run_id: *run_id,
                    first_position: e.first_position,
                },
            ));
        }
    }
}
