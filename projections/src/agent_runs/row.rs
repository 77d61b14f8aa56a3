//! How a [`RunState`] is stored as a row of `agent_runs` and read back.

use neonhub_events::{ErrorKind, Position, RunError, RunId, RunKind, RunState, Timestamp};
use rusqlite::{Connection, params};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};

/// One row of the AgentRun table: everything the log says about one run,
/// derived by the one fold, [`RunState`]. The usage columns (`model`,
/// `input_tokens`, `output_tokens`, `cost_usd`) are [`RunState::usage`]:
/// written, and derived again from `output` when a row is read.
pub type AgentRun = RunState;

/// The columns of a row, in the order [`SqlRow::from_sql`] reads them (a
/// macro, so SQL text is built with `concat!` at compile time).
macro_rules! columns {
    () => {
        "run_id, parent_run_id, correlation_id, kind, target, operation, intent, status, \
         attempts, input, output, error_kind, error_message, started_at, finished_at, \
         duration_micros, first_position, last_position, paused_micros, model, input_tokens, \
         output_tokens, cost_usd"
    };
}
pub(crate) use columns;

/// Reads a row selected with [`columns!`].
pub(crate) trait SqlRow: Sized {
    /// The row, or [`Error::CorruptRow`] for a value this build cannot read.
    fn from_sql(row: &rusqlite::Row<'_>) -> Result<Self>;
}

impl SqlRow for AgentRun {
    fn from_sql(row: &rusqlite::Row<'_>) -> Result<AgentRun> {
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
            paused_micros: row.get::<_, i64>(18)? as u64,
        })
    }
}

pub(crate) fn parse_kind(s: &str) -> Option<RunKind> {
    [RunKind::Agent, RunKind::Connector]
        .into_iter()
        .find(|k| k.as_str() == s)
}

fn parse_error_kind(s: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// A UUID as the table stores it (lower-case, hyphenated), without an
/// allocation.
fn uuid_text<'a>(uuid: &Uuid, buf: &'a mut [u8; 36]) -> &'a str {
    uuid.hyphenated().encode_lower(buf)
}

/// The row of `run_id`, if the table has it.
pub(super) fn load(conn: &Connection, run_id: RunId) -> Result<Option<AgentRun>> {
    let mut stmt = conn.prepare_cached(concat!(
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

pub(super) fn insert(conn: &Connection, run: &AgentRun) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(concat!(
        "INSERT INTO agent_runs (",
        columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
    ))?;
    let (mut a, mut b, mut c) = ([0; 36], [0; 36], [0; 36]);
    let usage = run.usage();
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
        run.paused_micros as i64,
        usage.as_ref().map(|u| u.model.as_str()),
        usage.as_ref().map(|u| u.input_tokens as i64),
        usage.as_ref().map(|u| u.output_tokens as i64),
        usage.as_ref().map(|u| u.cost_usd),
    ])
}

pub(super) fn update(conn: &Connection, run: &AgentRun) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "UPDATE agent_runs SET status = ?2, attempts = ?3, output = ?4, error_kind = ?5, \
         error_message = ?6, finished_at = ?7, duration_micros = ?8, last_position = ?9, \
         paused_micros = ?10, model = ?11, input_tokens = ?12, output_tokens = ?13, \
         cost_usd = ?14 WHERE run_id = ?1",
    )?;
    let mut buf = [0; 36];
    let usage = run.usage();
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
        run.paused_micros as i64,
        usage.as_ref().map(|u| u.model.as_str()),
        usage.as_ref().map(|u| u.input_tokens as i64),
        usage.as_ref().map(|u| u.output_tokens as i64),
        usage.as_ref().map(|u| u.cost_usd),
    ])
}
