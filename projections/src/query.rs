//! The typed reporting queries over the AgentRun table: filtered lists,
//! newest first or longest first with cursor pagination, one run with its
//! child runs, and every run of one correlation (a tree).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use neonhub_events::{ErrorKind, Position, RunId, RunKind, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use uuid::Uuid;

use crate::agent_runs::{AgentRun, RunStatus, SqlRow, columns, open_for_check, read_checkpoint};
use crate::error::{Error, Result};
use crate::report::{TargetReport, Timeline, TimelineBucket, report, timeline};

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
    /// Only runs whose error (`error.kind` of the row) is of this kind.
    pub error_kind: Option<ErrorKind>,
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

    /// Only runs whose error is of kind `kind`.
    pub fn error_kind(mut self, kind: ErrorKind) -> Self {
        self.error_kind = Some(kind);
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
            && self
                .error_kind
                .is_none_or(|k| run.error.as_ref().is_some_and(|e| e.kind == k))
            && self.correlation_id.is_none_or(|c| c == run.correlation_id)
            && self.from.is_none_or(|f| run.started_at >= f)
            && self.before.is_none_or(|b| run.started_at < b)
    }
}

/// The order of a list of runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunSort {
    /// Newest first by start time (runs started in the same microsecond:
    /// latest in the log first).
    #[default]
    Started,
    /// Longest first by duration (equal durations: latest in the log
    /// first). Finished runs only: a running run has no duration yet.
    Duration,
}

impl RunSort {
    /// `started` or `duration`, as the API and the command line spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunSort::Started => "started",
            RunSort::Duration => "duration",
        }
    }
}

impl FromStr for RunSort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "started" => Ok(RunSort::Started),
            "duration" => Ok(RunSort::Duration),
            _ => Err(Error::InvalidInput(format!(
                "sort {s:?}: expected started or duration"
            ))),
        }
    }
}

/// What a cursor orders by, with the last run's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum CursorKey {
    Started(Timestamp),
    Duration(u64),
}

/// Where the next page starts: just after the last run of the previous one,
/// in the list's order ([`RunSort`]).
///
/// Its text form (`<started_at micros>_<first position>` for the newest
/// first order, `d<duration micros>_<first position>` for the longest
/// first) is what an HTTP API hands out and takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    key: CursorKey,
    first_position: Position,
}

impl Cursor {
    /// The cursor just after `run`, newest first.
    pub fn after(run: &AgentRun) -> Self {
        Self {
            key: CursorKey::Started(run.started_at),
            first_position: run.first_position,
        }
    }

    /// The cursor just after `run` in the order `sort` (a running run has
    /// no place in the longest-first order: it is taken as 0 long).
    pub fn after_in(run: &AgentRun, sort: RunSort) -> Self {
        let key = match sort {
            RunSort::Started => CursorKey::Started(run.started_at),
            RunSort::Duration => CursorKey::Duration(run.duration_micros.unwrap_or(0)),
        };
        Self {
            key,
            first_position: run.first_position,
        }
    }

    /// The order this cursor pages through.
    pub fn sort(&self) -> RunSort {
        match self.key {
            CursorKey::Started(_) => RunSort::Started,
            CursorKey::Duration(_) => RunSort::Duration,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            CursorKey::Started(at) => write!(f, "{}_{}", at.0, self.first_position),
            CursorKey::Duration(d) => write!(f, "d{d}_{}", self.first_position),
        }
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput(format!("cursor {s:?} is not one this API handed out"));
        let (key, id) = s.split_once('_').ok_or_else(bad)?;
        let key = match key.strip_prefix('d') {
            Some(d) => CursorKey::Duration(d.parse().map_err(|_| bad())?),
            None => CursorKey::Started(Timestamp(key.parse().map_err(|_| bad())?)),
        };
        Ok(Cursor {
            key,
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

/// Every run of one root request (a correlation), in log order of their
/// first events; each names its parent, so a client builds the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTree {
    /// The root request.
    pub correlation_id: Uuid,
    /// Its runs, in first-position order, at most [`MAX_TREE_RUNS`] and
    /// about [`MAX_TREE_BYTES`] of run text.
    pub runs: Vec<AgentRun>,
    /// Whether the correlation has more runs than `runs` holds.
    pub truncated: bool,
}

/// The most runs a [`RunTree`] holds; a bigger correlation is cut, with
/// [`RunTree::truncated`] set.
pub const MAX_TREE_RUNS: usize = 10_000;

/// The bytes of run text (inputs, outputs, errors) a [`RunTree`] holds at
/// most, past which it is cut as at [`MAX_TREE_RUNS`] (a run larger than
/// this is still a tree of one).
pub const MAX_TREE_BYTES: usize = 32 << 20;

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
    /// [`Error::InvalidInput`] for a bad limit or a longest-first cursor;
    /// SQLite errors.
    pub fn list(&self, filter: &RunFilter, cursor: Option<Cursor>, limit: usize) -> Result<Page> {
        list(&self.conn, filter, RunSort::Started, cursor, limit)
    }

    /// Lists runs passing `filter` in the order `sort` (longest first lists
    /// finished runs only), `limit` at most, starting after `cursor`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad limit or a cursor of the other
    /// order; SQLite errors.
    pub fn list_sorted(
        &self,
        filter: &RunFilter,
        sort: RunSort,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page> {
        list(&self.conn, filter, sort, cursor, limit)
    }

    /// Every run of the correlation `id` names: `id` is a run id (its
    /// correlation is taken) or a correlation id. `None` when it is
    /// neither.
    ///
    /// # Errors
    /// SQLite errors, [`Error::CorruptRow`].
    pub fn tree(&self, id: Uuid) -> Result<Option<RunTree>> {
        tree(&self.conn, id)
    }

    /// Runs, failures and percentiles per hour or day of start time (see
    /// [`Timeline`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a window of more than
    /// [`crate::MAX_TIMELINE_BUCKETS`] buckets; SQLite errors.
    pub fn timeline(&self, query: &Timeline) -> Result<Vec<TimelineBucket>> {
        timeline(&self.conn, query)
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
    sort: RunSort,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::InvalidInput(format!(
            "page size {limit} is out of range 1..={MAX_PAGE_SIZE}"
        )));
    }
    if let Some(c) = cursor.filter(|c| c.sort() != sort) {
        return Err(Error::InvalidInput(format!(
            "cursor {c} pages through sort={}, not sort={}",
            c.sort().as_str(),
            sort.as_str()
        )));
    }
    let (sql, args) = list_query(filter, sort, cursor, limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut runs = Vec::with_capacity(limit + 1);
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let size = stored_bytes(row)?;
        if !runs.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
            // A shorter page: the next one starts after its last run.
            let next = runs.last().map(|r| Cursor::after_in(r, sort));
            return Ok(Page { runs, next });
        }
        bytes = bytes.saturating_add(size);
        runs.push(AgentRun::from_sql(row)?);
    }
    let next = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| Cursor::after_in(r, sort))
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
/// `cursor`, in the order `sort`, one more than `limit` (to tell whether a
/// next page exists).
///
/// Each filter has an index SQLite can use (`schema.rs`): target, status,
/// intent, error kind and correlation each an index of their own ordered
/// by start time, the kind and the time range `agent_runs_by_time`, and the
/// longest-first order `agent_runs_by_duration`. A longest-first list
/// narrowed by another filter sorts only the rows that filter's index
/// yields.
fn list_query(
    filter: &RunFilter,
    sort: RunSort,
    cursor: Option<Cursor>,
    limit: usize,
) -> (String, Vec<SqlValue>) {
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
    if let Some(k) = filter.error_kind {
        arg(
            &mut sql,
            " AND error_kind = ?",
            SqlValue::Text(k.as_str().into()),
        );
    }
    if let Some(c) = filter.correlation_id {
        arg(
            &mut sql,
            " AND correlation_id = ?",
            SqlValue::Text(c.to_string()),
        );
    }
    match sort {
        // Always a lower bound on `started_at` (the smallest there is when
        // the filter has none): without a range on it, SQLite scans and
        // sorts the whole table for `ORDER BY started_at DESC,
        // first_position DESC`; with one, it walks `agent_runs_by_time`
        // newest first and sorts only runs started in the same microsecond,
        // so the first page costs the same at ten rows or ten million.
        RunSort::Started => arg(
            &mut sql,
            " AND started_at >= ?",
            SqlValue::Integer(filter.from.map_or(i64::MIN, |f| f.0 as i64)),
        ),
        RunSort::Duration => {
            // Also what lets SQLite use the partial `agent_runs_by_duration`.
            sql.push_str(" AND duration_micros IS NOT NULL");
            if let Some(f) = filter.from {
                arg(
                    &mut sql,
                    " AND started_at >= ?",
                    SqlValue::Integer(f.0 as i64),
                );
            }
        }
    }
    if let Some(b) = filter.before {
        arg(
            &mut sql,
            " AND started_at < ?",
            SqlValue::Integer(b.0 as i64),
        );
    }
    let column = match sort {
        RunSort::Started => "started_at",
        RunSort::Duration => "duration_micros",
    };
    if let Some(c) = cursor {
        let key = match c.key {
            CursorKey::Started(at) => at.0 as i64,
            CursorKey::Duration(d) => d as i64,
        };
        args.push(SqlValue::Integer(key));
        args.push(SqlValue::Integer(c.first_position.0 as i64));
        sql.push_str(&format!(
            " AND ({column}, first_position) < (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY {column} DESC, first_position DESC LIMIT {}",
        limit + 1
    ));
    (sql, args)
}

pub(crate) fn tree(conn: &Connection, id: Uuid) -> Result<Option<RunTree>> {
    let text = id.to_string();
    let by_run: Option<String> = conn
        .prepare_cached("SELECT correlation_id FROM agent_runs WHERE run_id = ?1")?
        .query_row([&text], |r| r.get(0))
        .optional()?;
    let correlation = match by_run {
        Some(c) => c,
        None => text,
    };
    // `agent_runs_by_correlation` finds the rows; SQLite orders them by
    // their key, keeping the first MAX_TREE_RUNS + 1 only.
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs INDEXED BY agent_runs_by_correlation WHERE correlation_id = ?1 \
         ORDER BY first_position LIMIT ?2"
    ))?;
    let mut rows = stmt.query(rusqlite::params![correlation, MAX_TREE_RUNS as i64 + 1])?;
    let mut runs = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    while let Some(row) = rows.next()? {
        let size = stored_bytes(row)?;
        if runs.len() == MAX_TREE_RUNS
            || (!runs.is_empty() && bytes.saturating_add(size) > MAX_TREE_BYTES)
        {
            truncated = true;
            break;
        }
        bytes = bytes.saturating_add(size);
        runs.push(AgentRun::from_sql(row)?);
    }
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    Ok(Some(RunTree {
        correlation_id: first.correlation_id,
        runs,
        truncated,
    }))
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
            key: CursorKey::Started(Timestamp(1_700_000_000_123_456)),
            first_position: Position(42),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        let d = Cursor {
            key: CursorKey::Duration(1_234),
            first_position: Position(7),
        };
        assert_eq!(d.to_string(), "d1234_7");
        assert_eq!(d.to_string().parse::<Cursor>().unwrap(), d);
        assert_eq!(d.sort(), RunSort::Duration);
        assert!(matches!(
            "nope".parse::<Cursor>(),
            Err(Error::InvalidInput(_))
        ));
        assert!("12_notanumber".parse::<Cursor>().is_err());
        assert!("dx_1".parse::<Cursor>().is_err());
    }

    /// The plan of `list`'s query, one line per step.
    fn plan(filter: &RunFilter, sort: RunSort, cursor: Option<Cursor>) -> Vec<String> {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::agent_runs::schema::migrate(&mut conn, Path::new(":memory:")).unwrap();
        let (sql, args) = list_query(filter, sort, cursor, 10);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn the_newest_page_walks_the_time_index_and_never_sorts_the_table() {
        let cursor = Cursor {
            key: CursorKey::Started(Timestamp(1_700_000_000_000_000)),
            first_position: Position(42),
        };
        for cursor in [None, Some(cursor)] {
            let plan = plan(&RunFilter::default(), RunSort::Started, cursor);
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

    #[test]
    fn every_filter_walks_an_index_in_the_lists_order() {
        let correlation = Uuid::from_u128(7);
        let cases = [
            (RunFilter::new().target("slack"), "agent_runs_by_target"),
            (
                RunFilter::new().kind(RunKind::Connector),
                "agent_runs_by_time",
            ),
            (
                RunFilter::new().status(RunStatus::Failed),
                "agent_runs_by_status",
            ),
            (RunFilter::new().intent("sms.send"), "agent_runs_by_intent"),
            (
                RunFilter::new().error_kind(ErrorKind::InDoubt),
                "agent_runs_by_error_kind",
            ),
            (
                RunFilter::new().correlation_id(correlation),
                "agent_runs_by_correlation",
            ),
            (
                RunFilter::new().started_between(Some(Timestamp(5)), Some(Timestamp(9))),
                "agent_runs_by_time",
            ),
        ];
        let started = Cursor {
            key: CursorKey::Started(Timestamp(1_700_000_000_000_000)),
            first_position: Position(42),
        };
        for (filter, index) in cases {
            for cursor in [None, Some(started)] {
                let plan = plan(&filter, RunSort::Started, cursor);
                assert!(
                    plan.iter().any(|p| p.contains(&format!("INDEX {index}"))),
                    "{filter:?}: {plan:?}"
                );
                assert!(
                    !plan.iter().any(|p| p == "USE TEMP B-TREE FOR ORDER BY"),
                    "{filter:?}: {plan:?}"
                );
            }
            // Longest first: an index finds the rows, never a scan of the
            // table.
            let plan = plan(&filter, RunSort::Duration, None);
            assert!(
                plan.iter()
                    .all(|p| !p.starts_with("SCAN agent_runs") || p.contains("INDEX")),
                "{filter:?}: {plan:?}"
            );
        }
        // Longest first with no other filter walks the duration index,
        // cursor or not, without sorting.
        let longest = Cursor {
            key: CursorKey::Duration(1_000),
            first_position: Position(42),
        };
        for cursor in [None, Some(longest)] {
            let plan = plan(&RunFilter::new(), RunSort::Duration, cursor);
            assert!(
                plan.iter()
                    .any(|p| p.contains("INDEX agent_runs_by_duration")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
        }
    }

    #[test]
    fn a_tree_is_bounded_and_says_so() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::agent_runs::schema::migrate(&mut conn, Path::new(":memory:")).unwrap();
        let big = Uuid::from_u128(1);
        let small = Uuid::from_u128(2);
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO agent_runs (run_id, correlation_id, kind, target, operation, \
                     status, attempts, input, started_at, first_position, last_position) \
                     VALUES (?1, ?2, 'agent', 'echo', 'run', 'running', 1, '{}', ?3, ?3, ?3)",
                )
                .unwrap();
            for i in 0..=MAX_TREE_RUNS as u128 + 1 {
                let correlation = if i == 0 { small } else { big };
                // Started later the earlier in the log: the order is the log's.
                let at = 1_000_000 - i as i64;
                insert
                    .execute(rusqlite::params![
                        Uuid::from_u128(1000 + i).to_string(),
                        correlation.to_string(),
                        at
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let cut = tree_of(&conn, big);
        assert_eq!(cut.runs.len(), MAX_TREE_RUNS);
        assert!(cut.truncated);
        assert!(
            cut.runs
                .windows(2)
                .all(|w| w[0].first_position < w[1].first_position)
        );
        // By a run id: that run's correlation.
        let by_run = tree_of(&conn, Uuid::from_u128(1000));
        assert_eq!((by_run.correlation_id, by_run.runs.len()), (small, 1));
        assert!(!by_run.truncated);
        assert_eq!(tree(&conn, Uuid::from_u128(3)).unwrap(), None);
    }

    fn tree_of(conn: &Connection, id: Uuid) -> RunTree {
        tree(conn, id).unwrap().unwrap()
    }
}
