//! The AgentRun audit table: one SQLite row per run, its schema (created and
//! versioned here) and how run events change it.
//!
//! A row's `duration_micros` runs from the first `RunStarted.started_at` to
//! the terminal event's `finished_at`, so it includes retries and the waits
//! between them (each event's own `duration_micros` is one attempt only).
//! `error_kind`/`error_message` hold the error of the last failed attempt: on
//! a failed run the terminal error, on a run that succeeded after retries the
//! last retried failure, and nothing on a run that never failed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use neonhub_events::{
    Codec, Position, RecordedEvent, RunError, RunEvent, RunId, RunKind, Timestamp,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::metrics::{self, MetricsDelta, RunMetrics};
use crate::runner::Projection;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS agent_runs (
    run_id TEXT NOT NULL UNIQUE,
    parent_run_id TEXT,
    correlation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    operation TEXT NOT NULL,
    intent TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error_kind TEXT,
    error_message TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    duration_micros INTEGER,
    first_position INTEGER PRIMARY KEY,
    last_position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
";

/// Secondary indexes, for the reporting queries: newest first overall (also
/// covering the per-target report and the kind filter), by target, status,
/// intent, correlation and parent. Each ends with the row's key, its
/// `first_position` (unique: no two runs share a first event), which breaks
/// ties between runs started in the same microsecond.
const INDEXES_V1: &str = "
CREATE INDEX IF NOT EXISTS agent_runs_by_time
    ON agent_runs (started_at, kind, target, status, duration_micros);
CREATE INDEX IF NOT EXISTS agent_runs_by_target ON agent_runs (target, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_status ON agent_runs (status, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_intent ON agent_runs (intent, started_at)
    WHERE intent IS NOT NULL;
CREATE INDEX IF NOT EXISTS agent_runs_by_correlation
    ON agent_runs (correlation_id, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_parent ON agent_runs (parent_run_id, started_at)
    WHERE parent_run_id IS NOT NULL;
";

/// The columns of a row, in the order [`AgentRun::from_sql`] reads them (a
/// macro, so SQL text is built with `concat!` at compile time).
macro_rules! columns {
    () => {
        "run_id, parent_run_id, correlation_id, kind, target, operation, intent, status, \
         attempts, input, output, error_kind, error_message, started_at, finished_at, \
         duration_micros, first_position, last_position"
    };
}
pub(crate) use columns;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunStatus {
    /// Started (or waiting for a retry), no terminal event yet.
    Running,
    /// Ended with `RunSucceeded`.
    Succeeded,
    /// Ended with `RunFailed{will_retry: false}`.
    Failed,
}

impl RunStatus {
    /// The lower-case name stored in the table (`running`, `succeeded`, `failed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(Error::InvalidInput(format!(
                "unknown run status {other:?}; expected running, succeeded or failed"
            ))),
        }
    }
}

/// One row of the AgentRun table: everything the log says about one run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRun {
    /// The run.
    pub run_id: RunId,
    /// The agent run that made this connector call.
    pub parent_run_id: Option<RunId>,
    /// The root request.
    pub correlation_id: Uuid,
    /// Agent or connector.
    pub kind: RunKind,
    /// The agent or connector name.
    pub target: String,
    /// `run` for agents; `send`, `post_message`, ... for connectors.
    pub operation: String,
    /// The intent the run was routed by.
    pub intent: Option<String>,
    /// Running until the terminal event.
    pub status: RunStatus,
    /// The number of attempts started so far.
    pub attempts: u32,
    /// The input of the first attempt.
    pub input: Value,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The error of the last failed attempt (see the module docs).
    pub error: Option<RunError>,
    /// When the first attempt began.
    pub started_at: Timestamp,
    /// When the terminal event happened.
    pub finished_at: Option<Timestamp>,
    /// From the first start to the terminal event, in microseconds.
    pub duration_micros: Option<u64>,
    /// The log position of the run's first event (provenance).
    pub first_position: Position,
    /// The log position of the last event applied to this row (provenance).
    pub last_position: Position,
}

impl AgentRun {
    pub(crate) fn from_sql(row: &rusqlite::Row<'_>) -> Result<AgentRun> {
        let run_id: String = row.get(0)?;
        let bad = |reason: String| Error::CorruptRow {
            run_id: run_id.clone(),
            reason,
        };
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| bad(format!("{s:?}: {e}")));
        let json = |s: &str| serde_json::from_str::<Value>(s).map_err(|e| bad(e.to_string()));
        let parent: Option<String> = row.get(1)?;
        let correlation: String = row.get(2)?;
        let kind: String = row.get(3)?;
        let status: String = row.get(7)?;
        let input: String = row.get(9)?;
        let output: Option<String> = row.get(10)?;
        let error_kind: Option<String> = row.get(11)?;
        let error_message: Option<String> = row.get(12)?;
        let error = match error_kind {
            None => None,
            Some(k) => Some(RunError::new(
                parse_error_kind(&k).ok_or_else(|| bad(format!("error kind {k:?}")))?,
                error_message.unwrap_or_default(),
            )),
        };
        Ok(AgentRun {
            run_id: RunId::from_uuid(uuid(&run_id)?),
            parent_run_id: parent
                .as_deref()
                .map(uuid)
                .transpose()?
                .map(RunId::from_uuid),
            correlation_id: uuid(&correlation)?,
            kind: parse_kind(&kind).ok_or_else(|| bad(format!("kind {kind:?}")))?,
            target: row.get(4)?,
            operation: row.get(5)?,
            intent: row.get(6)?,
            status: status
                .parse()
                .map_err(|_| bad(format!("status {status:?}")))?,
            attempts: row.get(8)?,
            input: json(&input)?,
            output: output.as_deref().map(json).transpose()?,
            error,
            started_at: Timestamp(row.get::<_, i64>(13)? as u64),
            finished_at: row.get::<_, Option<i64>>(14)?.map(|t| Timestamp(t as u64)),
            duration_micros: row.get::<_, Option<i64>>(15)?.map(|d| d as u64),
            first_position: Position(row.get::<_, i64>(16)? as u64),
            last_position: Position(row.get::<_, i64>(17)? as u64),
        })
    }

    /// Applies a non-first event of this run's stream.
    fn apply(&mut self, event: RunEvent, position: Position) -> std::result::Result<bool, String> {
        if self.status != RunStatus::Running {
            return Err(format!(
                "run {} already finished ({}) at position {}",
                self.run_id, self.status, self.last_position
            ));
        }
        let finished = match event {
            RunEvent::Started(s) => {
                if s.attempt != self.attempts + 1 {
                    return Err(format!(
                        "RunStarted attempt {} after attempt {} of run {}",
                        s.attempt, self.attempts, self.run_id
                    ));
                }
                self.attempts = s.attempt;
                false
            }
            RunEvent::Succeeded(s) => {
                self.status = RunStatus::Succeeded;
                self.output = Some(s.output);
                self.finish(s.finished_at);
                true
            }
            RunEvent::Failed(f) => {
                self.error = Some(f.error);
                if !f.will_retry {
                    self.status = RunStatus::Failed;
                    self.finish(f.finished_at);
                }
                !f.will_retry
            }
            other => return Err(format!("unexpected event {}", other.event_type())),
        };
        self.last_position = position;
        Ok(finished)
    }

    fn finish(&mut self, at: Timestamp) {
        self.finished_at = Some(at);
        self.duration_micros = Some(at.0.saturating_sub(self.started_at.0));
    }
}

pub(crate) fn parse_kind(s: &str) -> Option<RunKind> {
    [RunKind::Agent, RunKind::Connector]
        .into_iter()
        .find(|k| k.as_str() == s)
}

fn parse_error_kind(s: &str) -> Option<neonhub_events::ErrorKind> {
    neonhub_events::ErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
}

/// Opens (creating if needed) a projection database with the pragmas every
/// connection uses: WAL, so queries read while the runner writes, and
/// `synchronous=NORMAL` (a power loss may lose the last commits, rows and
/// checkpoint together, which the runner then re-applies).
pub(crate) fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        // For new files only (an existing file keeps its page size): 16 KiB
        // pages measured about 15 % less CPU per rebuilt event than 4 KiB.
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

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

/// Creates the schema in a new file, or checks the version of an existing one.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(INDEXES_V1)?;
            tx.execute_batch(metrics::SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        found => Err(Error::SchemaVersion {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        }),
    }
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
    pub const NAME: &'static str = "agent_runs";

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
        migrate(&mut conn, &path)?;
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

pub(crate) fn read_checkpoint(conn: &Connection) -> Result<Position> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM projection_checkpoints WHERE projection = ?1",
            [AgentRunsProjection::NAME],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Position(position.unwrap_or(0) as u64))
}

/// A UUID as the table stores it (lower-case, hyphenated), without an
/// allocation.
pub(crate) fn uuid_text<'a>(uuid: &Uuid, buf: &'a mut [u8; 36]) -> &'a str {
    uuid.hyphenated().encode_lower(buf)
}

fn load_row(tx: &Transaction<'_>, run_id: RunId) -> Result<Option<AgentRun>> {
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs WHERE run_id = ?1"
    ))?;
    let mut buf = [0; 36];
    let mut rows = stmt.query([uuid_text(run_id.as_uuid(), &mut buf)])?;
    match rows.next()? {
        Some(row) => Ok(Some(AgentRun::from_sql(row)?)),
        None => Ok(None),
    }
}

fn insert_row(tx: &Transaction<'_>, run: &AgentRun) -> rusqlite::Result<usize> {
    let mut stmt = tx.prepare_cached(concat!(
        "INSERT INTO agent_runs (",
        columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?;
    let (mut a, mut b, mut c) = ([0; 36], [0; 36], [0; 36]);
    stmt.execute(params![
        uuid_text(run.run_id.as_uuid(), &mut a),
        run.parent_run_id.map(|p| uuid_text(p.as_uuid(), &mut b)),
        uuid_text(&run.correlation_id, &mut c),
        run.kind.as_str(),
        run.target,
        run.operation,
        run.intent,
        run.status.as_str(),
        run.attempts,
        run.input.to_string(),
        run.output.as_ref().map(Value::to_string),
        run.error.as_ref().map(|e| e.kind.as_str()),
        run.error.as_ref().map(|e| e.message.as_str()),
        run.started_at.0 as i64,
        run.finished_at.map(|t| t.0 as i64),
        run.duration_micros.map(|d| d as i64),
        run.first_position.0 as i64,
        run.last_position.0 as i64,
    ])
}

fn update_row(tx: &Transaction<'_>, run: &AgentRun) -> rusqlite::Result<usize> {
    let mut stmt = tx.prepare_cached(
        "UPDATE agent_runs SET status = ?2, attempts = ?3, output = ?4, error_kind = ?5, \
         error_message = ?6, finished_at = ?7, duration_micros = ?8, last_position = ?9 \
         WHERE run_id = ?1",
    )?;
    let mut buf = [0; 36];
    stmt.execute(params![
        uuid_text(run.run_id.as_uuid(), &mut buf),
        run.status.as_str(),
        run.attempts,
        run.output.as_ref().map(Value::to_string),
        run.error.as_ref().map(|e| e.kind.as_str()),
        run.error.as_ref().map(|e| e.message.as_str()),
        run.finished_at.map(|t| t.0 as i64),
        run.duration_micros.map(|d| d as i64),
        run.last_position.0 as i64,
    ])
}

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

impl AgentRunsProjection {
    /// The codec events are decoded with.
    pub(crate) fn codec(&self) -> &Codec {
        &self.codec
    }

    /// [`Projection::apply`] for events already [`prepare`]d.
    pub(crate) fn apply_prepared(&mut self, batch: Vec<Prepared>) -> Result<Position> {
        let start = self.checkpoint;
        let mut checkpoint = start;
        let mut order: Vec<RunId> = Vec::new();
        let mut touched: HashMap<RunId, Touched> = HashMap::new();
        let mut delta = MetricsDelta::default();
        let tx = self.conn.transaction()?;
        for recorded in batch {
            let Prepared {
                position,
                event_type,
                event,
            } = recorded;
            let recorded = (position, event_type.as_str());
            if position < start {
                continue;
            }
            if position < checkpoint {
                return Err(Self::apply_err(
                    recorded,
                    format!("out of order: the batch already reached position {checkpoint}"),
                ));
            }
            checkpoint = position.next();
            let event = match event {
                None => continue,
                Some(Err(reason)) => return Err(Self::apply_err(recorded, reason)),
                Some(Ok(event)) => event,
            };
            let run_id = event.run_id();
            match event {
                RunEvent::Started(s) if s.attempt == 1 => {
                    if touched.contains_key(&run_id) {
                        return Err(Self::apply_err(
                            recorded,
                            format!("a second RunStarted{{attempt: 1}} for run {run_id}"),
                        ));
                    }
                    delta.started();
                    order.push(run_id);
                    touched.insert(
                        run_id,
                        Touched {
                            run: AgentRun {
                                run_id,
                                parent_run_id: s.parent_run_id,
                                correlation_id: s.correlation_id,
                                kind: s.kind,
                                target: s.target,
                                operation: s.operation,
                                intent: s.intent,
                                status: RunStatus::Running,
                                attempts: 1,
                                input: s.input,
                                output: None,
                                error: None,
                                started_at: s.started_at,
                                finished_at: None,
                                duration_micros: None,
                                first_position: position,
                                last_position: position,
                            },
                            is_new: true,
                            event_type: event_type.clone(),
                        },
                    );
                }
                event => {
                    let entry = match touched.entry(run_id) {
                        Entry::Occupied(o) => o.into_mut(),
                        Entry::Vacant(v) => {
                            let Some(run) = load_row(&tx, run_id)? else {
                                return Err(Self::apply_err(
                                    recorded,
                                    format!(
                                        "run {run_id} has no RunStarted{{attempt: 1}} before this event"
                                    ),
                                ));
                            };
                            order.push(run_id);
                            v.insert(Touched {
                                run,
                                is_new: false,
                                event_type: String::new(),
                            })
                        }
                    };
                    let finished = entry
                        .run
                        .apply(event, position)
                        .map_err(|reason| Self::apply_err(recorded, reason))?;
                    if finished {
                        delta.finished(&entry.run);
                    }
                }
            }
        }
        for run_id in &order {
            let t = &touched[run_id];
            if t.is_new {
                insert_row(&tx, &t.run).map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        Error::Apply {
                            projection: Self::NAME,
                            position: t.run.first_position,
                            event_type: t.event_type.clone(),
                            reason: format!("a second RunStarted{{attempt: 1}} for run {run_id}"),
                        }
                    }
                    other => Error::Sqlite(other),
                })?;
            } else {
                update_row(&tx, &t.run)?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO projection_checkpoints (projection, position) VALUES (?1, ?2)
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
        )?
        .execute(params![Self::NAME, checkpoint.0 as i64])?;
        let pending = self.metrics.persist(&tx, &delta)?;
        tx.commit()?;
        if let Some(pending) = pending {
            self.metrics.commit(pending);
        }
        self.checkpoint = checkpoint;
        Ok(checkpoint)
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
        assert_eq!(indexes, 6);
        // Reopening an existing file keeps it.
        drop(AgentRunsProjection::open(&path).unwrap());
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

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed] {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
        assert!("done".parse::<RunStatus>().is_err());
    }
}
