//! The table's side of the check: rows read in batches by their key (the
//! first position), as stored, and compared column by column with what the
//! log gives, without parsing or re-serialising what need not be.

use std::collections::HashMap;

use neonhub_events::{Position, RunId};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use serde_json::Value;

use super::Mismatch;
use super::expected::{Expected, SeriesKey, SeriesValue};
use crate::agent_runs::columns;
use crate::error::Result;
use crate::metrics::{DURATION_BUCKETS_MICROS, RUNS_IN_FLIGHT};

/// Rows read per query.
const ROW_BATCH: usize = 4096;

/// The column names, in [`columns!`] order.
const COLUMNS: [&str; 19] = [
    "run_id",
    "parent_run_id",
    "correlation_id",
    "kind",
    "target",
    "operation",
    "intent",
    "status",
    "attempts",
    "input",
    "output",
    "error_kind",
    "error_message",
    "started_at",
    "finished_at",
    "duration_micros",
    "first_position",
    "last_position",
    "paused_micros",
];
const FIRST_POSITION: usize = 16;
const LAST_POSITION: usize = 17;

/// One stored row, its values as SQLite holds them.
#[derive(Debug)]
pub(super) struct StoredRow {
    pub(super) values: Vec<Sql>,
}

impl StoredRow {
    /// The stored `first_position`.
    pub(super) fn first_position(&self) -> Option<Position> {
        int(&self.values[FIRST_POSITION]).map(|p| Position(p as u64))
    }

    /// The stored `last_position`.
    pub(super) fn last_position(&self) -> Option<Position> {
        int(&self.values[LAST_POSITION]).map(|p| Position(p as u64))
    }
}

fn int(v: &Sql) -> Option<i64> {
    match v {
        Sql::Integer(i) => Some(*i),
        _ => None,
    }
}

/// Reads the table in `first_position` order, a batch at a time.
#[derive(Debug)]
pub(super) struct RowCursor {
    /// Rows with a first position below this were read.
    next: i64,
    done: bool,
    /// Rows read so far.
    pub(super) read: u64,
}

/// A row that was read: its run (or the stored text that is not a run id).
pub(super) type Keyed = std::result::Result<(RunId, StoredRow), (String, StoredRow)>;

impl RowCursor {
    pub(super) fn new() -> Self {
        Self {
            next: i64::MIN,
            done: false,
            read: 0,
        }
    }

    /// A cursor that skips the rows whose first position is before `start`
    /// (runs whose events were archived out of the log).
    pub(super) fn starting_at(start: Position) -> Self {
        Self {
            next: start.0.min(i64::MAX as u64) as i64,
            ..Self::new()
        }
    }

    /// Reads every row whose first position is at most `upto` (`None`: all
    /// the rest) into `out`, in batches.
    pub(super) fn read_upto(
        &mut self,
        conn: &Connection,
        upto: Option<Position>,
        out: &mut Vec<Keyed>,
    ) -> Result<()> {
        let limit = upto.map_or(i64::MAX, |p| p.0.min(i64::MAX as u64) as i64);
        while !self.done && self.next <= limit {
            if self.read_batch(conn, limit, out)? < ROW_BATCH {
                if limit == i64::MAX {
                    self.done = true;
                } else {
                    self.next = limit.saturating_add(1);
                }
                break;
            }
        }
        Ok(())
    }

    /// Reads the next batch of the rows not read yet into `out`; `false`
    /// once there are none left.
    pub(super) fn read_rest_batch(
        &mut self,
        conn: &Connection,
        out: &mut Vec<Keyed>,
    ) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let n = self.read_batch(conn, i64::MAX, out)?;
        if n < ROW_BATCH {
            self.done = true;
        }
        Ok(n > 0)
    }

    /// Reads up to [`ROW_BATCH`] rows from the cursor on, whose first
    /// position is at most `limit`, into `out`; how many.
    fn read_batch(&mut self, conn: &Connection, limit: i64, out: &mut Vec<Keyed>) -> Result<usize> {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM agent_runs WHERE first_position >= ?1 AND first_position <= ?2 \
             ORDER BY first_position LIMIT ?3"
        ))?;
        let mut rows = stmt.query(rusqlite::params![self.next, limit, ROW_BATCH as i64])?;
        let mut n = 0usize;
        while let Some(row) = rows.next()? {
            n += 1;
            let values = (0..COLUMNS.len())
                .map(|i| row.get::<_, Sql>(i))
                .collect::<rusqlite::Result<Vec<Sql>>>()?;
            let stored = StoredRow { values };
            let first = int(&stored.values[FIRST_POSITION]).unwrap_or(i64::MAX);
            self.next = first.saturating_add(1);
            if first == i64::MAX {
                self.done = true;
            }
            out.push(key(stored));
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn key(stored: StoredRow) -> Keyed {
    let parsed = match &stored.values[0] {
        Sql::Text(t) => uuid::Uuid::parse_str(t).ok().map(RunId::from_uuid),
        _ => None,
    };
    match parsed {
        Some(run_id) => Ok((run_id, stored)),
        None => Err((display(&stored.values[0]), stored)),
    }
}

/// The row of `run_id`, read on its own.
pub(super) fn load(conn: &Connection, run_id: RunId) -> Result<Option<StoredRow>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs WHERE run_id = ?1"
    ))?;
    let mut rows = stmt.query([run_id.to_string()])?;
    match rows.next()? {
        Some(row) => Ok(Some(StoredRow {
            values: (0..COLUMNS.len())
                .map(|i| row.get::<_, Sql>(i))
                .collect::<rusqlite::Result<Vec<Sql>>>()?,
        })),
        None => Ok(None),
    }
}

/// How many rows the table holds.
pub(super) fn row_count(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM agent_runs", [], |r| {
        r.get::<_, i64>(0)
    })? as u64)
}

/// A value the log gives for a column.
enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Json(&'a Value),
}

impl Cell<'_> {
    fn opt_text<'a>(v: Option<&'a str>) -> Cell<'a> {
        v.map_or(Cell::Null, Cell::Text)
    }

    fn opt_int(v: Option<u64>) -> Cell<'static> {
        v.map_or(Cell::Null, |v| Cell::Int(v as i64))
    }

    /// Whether the stored value is this one (`buf` is scratch space).
    fn matches(&self, stored: &Sql, buf: &mut Vec<u8>) -> bool {
        match (self, stored) {
            (Cell::Null, Sql::Null) => true,
            (Cell::Int(a), Sql::Integer(b)) => a == b,
            (Cell::Text(a), Sql::Text(b)) => *a == b,
            (Cell::Json(a), Sql::Text(b)) => {
                // The text the projection writes; else the same JSON value
                // written another way.
                buf.clear();
                (serde_json::to_writer(&mut *buf, a).is_ok() && buf.as_slice() == b.as_bytes())
                    || serde_json::from_str::<Value>(b).is_ok_and(|b| b == **a)
            }
            _ => false,
        }
    }

    fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Text(t) => quoted(t),
            Cell::Json(v) => shorten(&v.to_string()),
        }
    }
}

/// At most this many characters of a value are shown.
const SHOWN_CHARS: usize = 200;

fn shorten(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}... ({} bytes)", &s[..at], s.len()),
        None => s.to_owned(),
    }
}

fn quoted(s: &str) -> String {
    shorten(&format!("{s:?}"))
}

/// A stored value as the report shows it.
pub(super) fn display(v: &Sql) -> String {
    match v {
        Sql::Null => "NULL".to_owned(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(r) => format!("{r} (a real)"),
        Sql::Text(t) if t.starts_with(['{', '[', '"']) => shorten(t),
        Sql::Text(t) => quoted(t),
        Sql::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// Compares every column of `stored` with `run`, calling `report` for each
/// that differs.
pub(super) fn compare(run: &Expected, stored: &StoredRow, report: &mut impl FnMut(Mismatch)) {
    let (mut a, mut b, mut c) = ([0u8; 36], [0u8; 36], [0u8; 36]);
    let run_id = run.run_id.as_uuid().hyphenated().encode_lower(&mut a);
    let parent = run
        .parent_run_id
        .map(|p| &*p.as_uuid().hyphenated().encode_lower(&mut b));
    let correlation = run.correlation_id.hyphenated().encode_lower(&mut c);
    let error_kind = run.error.as_ref().map(|(k, _)| k.as_str());
    let error_message = run.error.as_ref().map(|(_, m)| m.as_str());
    let cells: [Cell<'_>; 19] = [
        Cell::Text(run_id),
        Cell::opt_text(parent),
        Cell::Text(correlation),
        Cell::Text(run.kind.as_str()),
        Cell::Text(&run.target),
        Cell::Text(&run.operation),
        Cell::opt_text(run.intent.as_deref()),
        Cell::Text(run.status.as_str()),
        Cell::Int(i64::from(run.attempts)),
        Cell::Json(&run.input),
        run.output.as_ref().map_or(Cell::Null, Cell::Json),
        Cell::opt_text(error_kind),
        Cell::opt_text(error_message),
        Cell::Int(run.started_at.0 as i64),
        Cell::opt_int(run.finished_at.map(|t| t.0)),
        Cell::opt_int(run.duration_micros),
        Cell::Int(run.first_position.0 as i64),
        Cell::Int(run.last_position.0 as i64),
        Cell::Int(run.paused_micros as i64),
    ];
    let mut buf = Vec::with_capacity(256);
    for ((cell, value), column) in cells.iter().zip(&stored.values).zip(COLUMNS) {
        if !cell.matches(value, &mut buf) {
            report(Mismatch::Column {
                run_id: run.run_id,
                first_position: run.first_position,
                column,
                table: display(value),
                log: cell.display(),
            });
        }
    }
}

/// The stored metric series (as of the checkpoint) and the stored in-flight
/// gauge; a series whose labels do not parse is named by its raw text.
pub(super) fn stored_metrics(
    conn: &Connection,
) -> Result<(HashMap<SeriesKey, SeriesValue>, Option<i64>)> {
    let mut series = HashMap::new();
    let mut in_flight = None;
    let labels = |family: &str, raw: &str| -> SeriesKey {
        match serde_json::from_str::<Vec<[String; 2]>>(raw) {
            Ok(pairs) => (
                family.to_owned(),
                pairs.into_iter().map(|[k, v]| (k, v)).collect(),
            ),
            Err(_) => (format!("{family}{raw}"), Vec::new()),
        }
    };
    let mut stmt = conn.prepare("SELECT family, labels, value FROM run_metric_counters")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let family: String = row.get(0)?;
        let raw: String = row.get(1)?;
        let value: i64 = row.get(2)?;
        if family == RUNS_IN_FLIGHT {
            in_flight = Some(value);
        } else {
            series.insert(labels(&family, &raw), SeriesValue::Count(value));
        }
    }
    let mut stmt = conn
        .prepare("SELECT family, labels, count, sum_micros, buckets FROM run_metric_histograms")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let family: String = row.get(0)?;
        let raw: String = row.get(1)?;
        let count: i64 = row.get(2)?;
        let sum: i64 = row.get(3)?;
        let buckets: String = row.get(4)?;
        let buckets: Vec<u64> = serde_json::from_str(&buckets)
            .unwrap_or_else(|_| vec![u64::MAX; DURATION_BUCKETS_MICROS.len() + 1]);
        series.insert(
            labels(&family, &raw),
            SeriesValue::Histogram {
                buckets,
                count: count as u64,
                sum_micros: sum as u64,
            },
        );
    }
    Ok((series, in_flight))
}

/// A series' value as the report shows it.
pub(super) fn show_series(v: Option<&SeriesValue>) -> String {
    match v {
        None => "absent".to_owned(),
        Some(SeriesValue::Count(n)) => n.to_string(),
        Some(SeriesValue::Histogram {
            buckets,
            count,
            sum_micros,
        }) => format!("count {count}, sum {sum_micros} µs, buckets {buckets:?}"),
    }
}
