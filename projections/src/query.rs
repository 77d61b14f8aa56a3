//! The typed reporting queries over the AgentRun table: filtered lists,
//! newest first with cursor pagination, and one run with its child runs.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use neonhub_events::{Position, RunId, RunKind, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use uuid::Uuid;

use crate::agent_runs::{AgentRun, RunStatus, SqlRow, columns, open_for_check, read_checkpoint};
use crate::error::{Error, Result};
use crate::report::{TargetReport, report};

/// The most runs one page holds.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which runs to list. Every field set narrows the list; the time range is
/// on the run's start (`started_at`), `from` included, `before` excluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only runs of this agent or connector.
    pub target: Option<String>,
    /// Only agent runs, or only connector runs.
    pub kind: Option<RunKind>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs routed by this intent.
    pub intent: Option<String>,
    /// Only runs of this root request.
    pub correlation_id: Option<Uuid>,
    /// Only runs started at or after this time.
    pub from: Option<Timestamp>,
    /// Only runs started before this time.
    pub before: Option<Timestamp>,
}

impl RunFilter {
    /// Every run.
    pub fn new() -> Self {
        Self::default()
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

    /// Only runs in `status`.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs routed by `intent`.
    pub fn intent(mut self, intent: impl Into<String>) -> Self {
        self.intent = Some(intent.into());
        self
    }

    /// Only runs of the root request `correlation_id`.
    pub fn correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Only runs started in `[from, before)`; either end may be open.
    pub fn started_between(mut self, from: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.from = from;
        self.before = before;
        self
    }

    /// Whether `run` passes this filter (the same test the SQL makes).
    pub fn matches(&self, run: &AgentRun) -> bool {
        self.target.as_ref().is_none_or(|t| *t == run.target)
            && self.kind.is_none_or(|k| k == run.kind)
            && self.status.is_none_or(|s| s == run.status)
            && self
                .intent
                .as_ref()
                .is_none_or(|i| run.intent.as_ref() == Some(i))
            && self.correlation_id.is_none_or(|c| c == run.correlation_id)
            && self.from.is_none_or(|f| run.started_at >= f)
            && self.before.is_none_or(|b| run.started_at < b)
    }
}

/// Where the next page starts: just after the last run of the previous one,
/// in the list's order (newest first by start time; runs started in the same
/// microsecond, latest in the log first).
///
/// Its text form (`<started_at micros>_<first position>`) is what an HTTP
/// API hands out and takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    started_at: Timestamp,
    first_position: Position,
}

impl Cursor {
    /// The cursor just after `run`.
    pub fn after(run: &AgentRun) -> Self {
        Self {
            started_at: run.started_at,
            first_position: run.first_position,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.started_at.0, self.first_position)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput(format!("cursor {s:?} is not one this API handed out"));
        let (at, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Cursor {
            started_at: Timestamp(at.parse().map_err(|_| bad())?),
            first_position: Position(id.parse().map_err(|_| bad())?),
        })
    }
}

/// One page of runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The runs, newest first.
    pub runs: Vec<AgentRun>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A run and the connector calls it made.
#[derive(Clone, Debug, PartialEq)]
pub struct RunDetail {
    /// The run.
    pub run: AgentRun,
    /// Its child runs, oldest first.
    pub children: Vec<AgentRun>,
}

/// Read-only access to an AgentRun table, from any thread: open one per
/// thread (SQLite's WAL lets it read while the runner writes).
pub struct RunQueries {
    conn: Connection,
}

impl fmt::Debug for RunQueries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunQueries").finish_non_exhaustive()
    }
}

impl RunQueries {
    /// Opens the projection database at `path` for queries only.
    ///
    /// # Errors
    /// SQLite errors (no such file: open the projection first).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            // Read-write but `query_only`: the last connection to close
            // removes the `-wal` and `-shm` files, so a query changes no
            // file (a read-only connection would leave them behind).
            conn: open_for_check(path.as_ref())?,
        })
    }

    /// Lists runs passing `filter`, newest first, `limit` at most (1 to
    /// [`MAX_PAGE_SIZE`]), starting after `cursor`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit; SQLite errors.
    pub fn list(&self, filter: &RunFilter, cursor: Option<Cursor>, limit: usize) -> Result<Page> {
        list(&self.conn, filter, cursor, limit)
    }

    /// One run and its child runs; `None` if the table has no such run.
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn get(&self, run_id: RunId) -> Result<Option<RunDetail>> {
        get(&self.conn, run_id)
    }

    /// Per-target figures for runs started in `[from, before)` (see
    /// [`TargetReport`]).
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn report(
        &self,
        from: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> Result<Vec<TargetReport>> {
        report(&self.conn, from, before)
    }

    /// The projection's checkpoint: the position of the next event it will
    /// apply.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn checkpoint(&self) -> Result<Position> {
        read_checkpoint(&self.conn)
    }

    /// The runs (agent runs and steps) not finished as of the checkpoint,
    /// in log order of their start, with that checkpoint, read in one
    /// transaction: what start-up recovery starts from instead of the whole
    /// log.
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn in_flight(&mut self) -> Result<(Position, Vec<RunId>)> {
        let tx = self.conn.transaction()?;
        let checkpoint = read_checkpoint(&tx)?;
        let mut runs = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT run_id FROM agent_runs WHERE status = ?1 ORDER BY first_position",
            )?;
            let mut rows = stmt.query([RunStatus::Running.as_str()])?;
            while let Some(row) = rows.next()? {
                runs.push(run_id_of(&row.get::<_, String>(0)?)?);
            }
        }
        tx.finish()?;
        Ok((checkpoint, runs))
    }

    /// The `(run, step)` pairs of the child runs of `runs`.
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn steps_of(&self, runs: &[RunId]) -> Result<Vec<(RunId, RunId)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT run_id FROM agent_runs WHERE parent_run_id = ?1")?;
        let mut pairs = Vec::new();
        for run in runs {
            let mut rows = stmt.query([run.to_string()])?;
            while let Some(row) = rows.next()? {
                pairs.push((*run, run_id_of(&row.get::<_, String>(0)?)?));
            }
        }
        Ok(pairs)
    }

    /// Every row, ordered by run id (for comparisons and audits).
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn all_runs(&self) -> Result<Vec<AgentRun>> {
        all_runs(&self.conn)
    }
}

/// A run id as the table stores it.
fn run_id_of(text: &str) -> Result<RunId> {
    Uuid::parse_str(text)
        .map(RunId::from_uuid)
        .map_err(|e| Error::CorruptRow {
            run_id: text.to_owned(),
            reason: e.to_string(),
        })
}

pub(crate) fn list(
    conn: &Connection,
    filter: &RunFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::InvalidInput(format!(
            "page size {limit} is out of range 1..={MAX_PAGE_SIZE}"
        )));
    }
    let (sql, args) = list_query(filter, cursor, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut runs = Vec::with_capacity(limit + 1);
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let size = stored_bytes(row)?;
        if !runs.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
            // A shorter page: the next one starts after its last run.
            let next = runs.last().map(Cursor::after);
            return Ok(Page { runs, next });
        }
        bytes = bytes.saturating_add(size);
        runs.push(AgentRun::from_sql(row)?);
    }
    let next = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(Cursor::after)
    } else {
        None
    };
    Ok(Page { runs, next })
}

/// The bytes of text a page of [`list`] holds at most (inputs, outputs and
/// errors can each be up to the request limit): past it the page is
/// shorter than its limit and has a next cursor, so an answer's memory is
/// bounded whatever the rows hold. A single run larger than this is still a
/// page of its own.
pub(crate) const MAX_PAGE_BYTES: usize = 4 << 20;

/// The bytes of text and blobs of a row.
fn stored_bytes(row: &rusqlite::Row<'_>) -> Result<usize> {
    let mut bytes = 0;
    for i in 0..row.as_ref().column_count() {
        if let rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) =
            row.get_ref(i)?
        {
            bytes += b.len();
        }
    }
    Ok(bytes)
}

/// The SQL of [`list`] and its arguments: the rows passing `filter` after
/// `cursor`, newest first, one more than `limit` (to tell whether a next
/// page exists).
fn list_query(filter: &RunFilter, cursor: Option<Cursor>, limit: usize) -> (String, Vec<SqlValue>) {
    let mut sql = String::from(concat!("SELECT ", columns!(), " FROM agent_runs WHERE 1"));
    let mut args: Vec<SqlValue> = Vec::new();
    let mut arg = |sql: &mut String, cond: &str, v: SqlValue| {
        args.push(v);
        sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = &filter.target {
        arg(&mut sql, " AND target = ?", SqlValue::Text(t.clone()));
    }
    if let Some(k) = filter.kind {
        arg(&mut sql, " AND kind = ?", SqlValue::Text(k.as_str().into()));
    }
    if let Some(s) = filter.status {
        arg(
            &mut sql,
            " AND status = ?",
            SqlValue::Text(s.as_str().into()),
        );
    }
    if let Some(i) = &filter.intent {
        arg(&mut sql, " AND intent = ?", SqlValue::Text(i.clone()));
    }
    if let Some(c) = filter.correlation_id {
        arg(
            &mut sql,
            " AND correlation_id = ?",
            SqlValue::Text(c.to_string()),
        );
    }
    // Always a lower bound on `started_at` (the smallest there is when the
    // filter has none): without a range on it, SQLite scans and sorts the
    // whole table for `ORDER BY started_at DESC, first_position DESC`; with
    // one, it walks `agent_runs_by_time` newest first and sorts only runs
    // started in the same microsecond, so the first page costs the same at
    // ten rows or ten million.
    arg(
        &mut sql,
        " AND started_at >= ?",
        SqlValue::Integer(filter.from.map_or(i64::MIN, |f| f.0 as i64)),
    );
    if let Some(b) = filter.before {
        arg(
            &mut sql,
            " AND started_at < ?",
            SqlValue::Integer(b.0 as i64),
        );
    }
    if let Some(c) = cursor {
        args.push(SqlValue::Integer(c.started_at.0 as i64));
        args.push(SqlValue::Integer(c.first_position.0 as i64));
        sql.push_str(&format!(
            " AND (started_at, first_position) < (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY started_at DESC, first_position DESC LIMIT {}",
        limit + 1
    ));
    (sql, args)
}

pub(crate) fn get(conn: &Connection, run_id: RunId) -> Result<Option<RunDetail>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs WHERE run_id = ?1"
    ))?;
    let mut rows = stmt.query([run_id.to_string()])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let run = AgentRun::from_sql(row)?;
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs WHERE parent_run_id = ?1 ORDER BY started_at, first_position"
    ))?;
    let mut rows = stmt.query([run_id.to_string()])?;
    let mut children = Vec::new();
    while let Some(row) = rows.next()? {
        children.push(AgentRun::from_sql(row)?);
    }
    Ok(Some(RunDetail { run, children }))
}

pub(crate) fn all_runs(conn: &Connection) -> Result<Vec<AgentRun>> {
    let mut stmt = conn.prepare(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs ORDER BY run_id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(AgentRun::from_sql(row)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_text() {
        let c = Cursor {
            started_at: Timestamp(1_700_000_000_123_456),
            first_position: Position(42),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!(matches!(
            "nope".parse::<Cursor>(),
            Err(Error::InvalidInput(_))
        ));
        assert!("12_notanumber".parse::<Cursor>().is_err());
    }

    /// The plan of `list`'s query, one line per step.
    fn plan(filter: &RunFilter, cursor: Option<Cursor>) -> Vec<String> {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::agent_runs::schema::migrate(&mut conn, Path::new(":memory:")).unwrap();
        let (sql, args) = list_query(filter, cursor, 10);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn the_newest_page_walks_the_time_index_and_never_sorts_the_table() {
        let cursor = Cursor {
            started_at: Timestamp(1_700_000_000_000_000),
            first_position: Position(42),
        };
        for cursor in [None, Some(cursor)] {
            let plan = plan(&RunFilter::default(), cursor);
            assert!(
                plan.iter()
                    .any(|p| p.contains("USING INDEX agent_runs_by_time")),
                "{plan:?}"
            );
            // Sorting only runs started in the same microsecond ("RIGHT
            // PART") is fine; sorting every row is not.
            assert!(
                !plan.iter().any(|p| p == "USE TEMP B-TREE FOR ORDER BY"),
                "{plan:?}"
            );
        }
    }
}
