//! The AgentRun audit table: one SQLite row per run and how run events
//! change it. A row is the [`neonhub_events::RunState`] fold of the run's
//! events; this module decides only what is written when.
//!
//! - [`schema`]: the file, its versioned schema, the checkpoint row;
//! - [`row`]: a [`RunState`] as a row and back;
//! - here: the projection, applying a batch in one transaction.

mod row;
pub(crate) mod schema;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    Codec, FoldError, Position, RecordedEvent, RunEvent, RunId, RunStarted, RunState,
};
use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};
use crate::metrics::{MetricsDelta, RunMetrics};
use crate::runner::Projection;

pub use neonhub_events::RunStatus;
pub use row::AgentRun;
pub(crate) use row::{SqlRow, columns, parse_kind};
pub use schema::SCHEMA_VERSION;
pub(crate) use schema::{open_connection, open_for_check, read_checkpoint};

/// How a projection database is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Crash-safe (WAL, `synchronous=NORMAL`), every index kept up to date.
    Live,
    /// For a rebuild into a file that is thrown away unless it completes: no
    /// syncs, a rollback journal in memory, the file locked once, a 256 MiB
    /// page cache; switched to
    /// WAL at the end ([`AgentRunsProjection::finish_bulk`]). (Keeping the
    /// indexes up to date as rows arrive in start order measured faster
    /// than building them at the end.)
    Bulk,
}

/// The AgentRun projection: the `agent_runs` table and the run metrics in
/// one SQLite file, with their checkpoint.
///
/// Each batch is one transaction writing the changed rows, the changed metric
/// series and the checkpoint. Events of streams that are not run streams are
/// passed over (they are not runs); an event of a run stream that does not
/// decode or does not fit the run stops the projection with
/// [`Error::Apply`].
pub struct AgentRunsProjection {
    conn: Connection,
    path: PathBuf,
    checkpoint: Position,
    metrics: RunMetrics,
    codec: Codec,
}

impl fmt::Debug for AgentRunsProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRunsProjection")
            .field("path", &self.path)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

impl AgentRunsProjection {
    /// The projection's name (its checkpoint key).
    pub const NAME: &'static str = schema::NAME;

    /// Opens the projection database at `path`, creating it and its schema
    /// if needed, and loads its checkpoint and metrics.
    ///
    /// # Errors
    /// [`Error::SchemaVersion`] for a file from a newer build; SQLite errors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), Mode::Live)
    }

    pub(crate) fn open_with(path: &Path, mode: Mode) -> Result<Self> {
        let path = path.to_owned();
        let mut conn = open_connection(&path, false)?;
        if mode == Mode::Bulk {
            conn.pragma_update(None, "journal_mode", "MEMORY")?;
            conn.pragma_update(None, "synchronous", "OFF")?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            // Tables bigger than the default cache slow down sharply.
            conn.pragma_update(None, "cache_size", -262_144)?;
        }
        schema::migrate(&mut conn, &path)?;
        let checkpoint = read_checkpoint(&conn)?;
        let metrics = RunMetrics::load(&conn)?;
        Ok(Self {
            conn,
            path,
            checkpoint,
            metrics,
            codec: Codec::new(),
        })
    }

    /// Decodes events with `codec` (one with upcasters for old event types).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run metrics, kept up to date as batches commit.
    pub fn metrics(&self) -> RunMetrics {
        self.metrics.clone()
    }

    /// Ends a [`Mode::Bulk`] load: switches the file to WAL, as a live
    /// projection expects it.
    pub(crate) fn finish_bulk(self) -> Result<()> {
        self.conn.pragma_update(None, "locking_mode", "NORMAL")?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    fn apply_err((position, event_type): (Position, &str), reason: impl Into<String>) -> Error {
        Error::Apply {
            projection: Self::NAME,
            position,
            event_type: event_type.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A run touched by the batch being applied, and whether its row is new.
struct Touched {
    run: AgentRun,
    is_new: bool,
    event_type: String,
}

impl Projection for AgentRunsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn checkpoint(&self) -> Position {
        self.checkpoint
    }

    fn apply(&mut self, batch: &[RecordedEvent]) -> Result<Position> {
        let prepared = prepare(&self.codec, batch);
        self.apply_prepared(prepared)
    }
}

/// An event made ready to apply: its envelope's facts and its decoded run
/// event (decoding is the part a rebuild does on another thread).
#[derive(Debug)]
pub(crate) struct Prepared {
    position: Position,
    event_type: String,
    /// `None` for an event of a stream that is not a run stream.
    event: Option<std::result::Result<RunEvent, String>>,
}

/// Decodes `batch` for [`AgentRunsProjection::apply_prepared`].
pub(crate) fn prepare(codec: &Codec, batch: &[RecordedEvent]) -> Vec<Prepared> {
    batch
        .iter()
        .map(|recorded| Prepared {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            event: recorded.stream.run_id().map(|run_id| {
                let event = codec.decode(recorded).map_err(|e| e.to_string())?;
                if event.run_id() != run_id {
                    return Err(format!(
                        "the event is for run {} but sits in stream {}",
                        event.run_id(),
                        recorded.stream
                    ));
                }
                Ok(event)
            }),
        })
        .collect()
}

/// What one batch changes: the runs it touched (in the order it first
/// touched them), the metrics, and the checkpoint it reaches.
struct Changes {
    start: Position,
    checkpoint: Position,
    order: Vec<RunId>,
    touched: HashMap<RunId, Touched>,
    delta: MetricsDelta,
}

impl Changes {
    fn new(checkpoint: Position) -> Self {
        Self {
            start: checkpoint,
            checkpoint,
            order: Vec::new(),
            touched: HashMap::new(),
            delta: MetricsDelta::default(),
        }
    }

    /// Folds one event into the touched runs (rows not yet written).
    fn apply(&mut self, tx: &Transaction<'_>, prepared: Prepared) -> Result<()> {
        let Prepared {
            position,
            event_type,
            event,
        } = prepared;
        if position < self.start {
            return Ok(());
        }
        let err = |reason: String| AgentRunsProjection::apply_err((position, &event_type), reason);
        if position < self.checkpoint {
            return Err(err(format!(
                "out of order: the batch already reached position {}",
                self.checkpoint
            )));
        }
        self.checkpoint = position.next();
        match event {
            None => Ok(()),
            Some(Err(reason)) => Err(err(reason)),
            Some(Ok(RunEvent::Started(s))) if s.attempt == 1 => {
                self.start_run(s, position, event_type)
            }
            Some(Ok(event)) => {
                let run_id = event.run_id();
                let run = touch(&mut self.touched, &mut self.order, tx, run_id)?
                    .ok_or_else(|| err(FoldError::NotStarted { run_id }.to_string()))?;
                let was_finished = run.is_finished();
                let finished = run.apply(event, position).map_err(|e| err(e.to_string()))?;
                match (was_finished, finished) {
                    (false, true) => self.delta.finished(run, true),
                    // A step that ended in_doubt, resolved as sent.
                    (true, true) => self.delta.finished(run, false),
                    // A run that ended in_doubt, reopened by its resolution.
                    (true, false) => self.delta.reopened(),
                    (false, false) => {}
                }
                Ok(())
            }
        }
    }

    /// A new run: its row is inserted when the batch is written.
    fn start_run(
        &mut self,
        started: RunStarted,
        position: Position,
        event_type: String,
    ) -> Result<()> {
        let run_id = started.run_id;
        if self.touched.contains_key(&run_id) {
            let reason = FoldError::StartedTwice { run_id }.to_string();
            return Err(AgentRunsProjection::apply_err(
                (position, &event_type),
                reason,
            ));
        }
        let run = RunState::start(started, position)
            .map_err(|e| AgentRunsProjection::apply_err((position, &event_type), e.to_string()))?;
        self.delta.started();
        self.order.push(run_id);
        self.touched.insert(
            run_id,
            Touched {
                run,
                is_new: true,
                event_type,
            },
        );
        Ok(())
    }

    /// Writes every touched row: inserts for new runs, updates for the rest.
    fn write(&self, tx: &Transaction<'_>) -> Result<()> {
        for run_id in &self.order {
            let t = &self.touched[run_id];
            if !t.is_new {
                row::update(tx, &t.run)?;
                continue;
            }
            row::insert(tx, &t.run).map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    AgentRunsProjection::apply_err(
                        (t.run.first_position, &t.event_type),
                        FoldError::StartedTwice { run_id: *run_id }.to_string(),
                    )
                }
                other => Error::Sqlite(other),
            })?;
        }
        Ok(())
    }
}

/// The state of `run_id` as the batch has it so far: touched already, or
/// loaded from its row (`None`: the table has no such run).
fn touch<'a>(
    touched: &'a mut HashMap<RunId, Touched>,
    order: &mut Vec<RunId>,
    conn: &Connection,
    run_id: RunId,
) -> Result<Option<&'a mut AgentRun>> {
    let entry = match touched.entry(run_id) {
        Entry::Occupied(o) => o.into_mut(),
        Entry::Vacant(v) => {
            let Some(run) = row::load(conn, run_id)? else {
                return Ok(None);
            };
            order.push(run_id);
            v.insert(Touched {
                run,
                is_new: false,
                event_type: String::new(),
            })
        }
    };
    Ok(Some(&mut entry.run))
}

impl AgentRunsProjection {
    /// The codec events are decoded with.
    pub(crate) fn codec(&self) -> &Codec {
        &self.codec
    }

    /// [`Projection::apply`] for events already [`prepare`]d: one
    /// transaction writes the touched rows, the metrics and the checkpoint.
    pub(crate) fn apply_prepared(&mut self, batch: Vec<Prepared>) -> Result<Position> {
        let mut changes = Changes::new(self.checkpoint);
        let tx = self.conn.transaction()?;
        for prepared in batch {
            changes.apply(&tx, prepared)?;
        }
        changes.write(&tx)?;
        schema::write_checkpoint(&tx, changes.checkpoint)?;
        let pending = self.metrics.persist(&tx, &changes.delta)?;
        tx.commit()?;
        if let Some(pending) = pending {
            self.metrics.commit(pending);
        }
        self.checkpoint = changes.checkpoint;
        Ok(changes.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_created_versioned_and_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        drop(AgentRunsProjection::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'agent_runs_by_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 8);
        // Reopening an existing file keeps it.
        drop(AgentRunsProjection::open(&path).unwrap());
        // A version 2 file gets the indexes version 3 added.
        conn.execute_batch(
            "DROP INDEX agent_runs_by_error_kind; DROP INDEX agent_runs_by_duration;
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(AgentRunsProjection::open(&path).unwrap());
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'agent_runs_by_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 8);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        match AgentRunsProjection::open(&path) {
            Err(Error::SchemaVersion { found, known, .. }) => {
                assert_eq!(found, SCHEMA_VERSION + 1);
                assert_eq!(known, SCHEMA_VERSION);
            }
            other => panic!("expected SchemaVersion, got {other:?}"),
        }
    }
}
