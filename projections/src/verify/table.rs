//! The table's side of the check: rows read in batches by their key (the
//! first position), as stored, and compared column by column with what the
//! log gives, without parsing or re-serialising what need not be.

use std::collections::HashMap;

use neonhub_events::{Position, RunId};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde_json::Value;

use super::Mismatch;
use super::expected::{Expected, SeriesKey, SeriesValue};
use crate::agent_runs::columns;
use crate::error::Result;
use crate::metrics::{DURATION_BUCKETS_MICROS, RUNS_IN_FLIGHT};

/// Rows sent to the walk per batch.
const ROW_BATCH: usize = 4096;

/// The column names, in [`columns!`] order.
const COLUMNS: [&str; 23] = [
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
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
];
const FIRST_POSITION: usize = 16;
const LAST_POSITION: usize = 17;

/// One stored row, its values as SQLite holds them: its text and blob
/// values one after the other in a single buffer (one allocation a row,
/// and text is not checked to be UTF-8 until it has to be shown).
#[derive(Debug)]
pub(super) struct StoredRow {
    bytes: Vec<u8>,
    values: [Stored; COLUMNS.len()],
}

/// A stored value; text and blobs are ranges of [`StoredRow::bytes`].
#[derive(Clone, Copy, Debug)]
enum Stored {
    Null,
    Integer(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl StoredRow {
    /// The row `row` of a query of [`columns!`].
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let mut bytes = Vec::with_capacity(512);
        let mut values = [Stored::Null; COLUMNS.len()];
        for (i, value) in values.iter_mut().enumerate() {
            let mut range = |b: &[u8]| {
                let start = bytes.len();
                bytes.extend_from_slice(b);
                (start, bytes.len())
            };
            *value = match row.get_ref(i)? {
                ValueRef::Null => Stored::Null,
                ValueRef::Integer(i) => Stored::Integer(i),
                ValueRef::Real(r) => Stored::Real(r),
                ValueRef::Text(t) => {
                    let (a, b) = range(t);
                    Stored::Text(a, b)
                }
                ValueRef::Blob(t) => {
                    let (a, b) = range(t);
                    Stored::Blob(a, b)
                }
            };
        }
        Ok(Self { bytes, values })
    }

    /// The value of column `i`.
    fn get(&self, i: usize) -> ValueRef<'_> {
        match self.values[i] {
            Stored::Null => ValueRef::Null,
            Stored::Integer(i) => ValueRef::Integer(i),
            Stored::Real(r) => ValueRef::Real(r),
            Stored::Text(a, b) => ValueRef::Text(&self.bytes[a..b]),
            Stored::Blob(a, b) => ValueRef::Blob(&self.bytes[a..b]),
        }
    }

    /// The stored `first_position`.
    pub(super) fn first_position(&self) -> Option<Position> {
        int(self.get(FIRST_POSITION)).map(|p| Position(p as u64))
    }

    /// The stored `last_position`.
    pub(super) fn last_position(&self) -> Option<Position> {
        int(self.get(LAST_POSITION)).map(|p| Position(p as u64))
    }
}

fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

/// A row that was read: its run (or the stored text that is not a run id),
/// and the row.
pub(super) type Keyed = (std::result::Result<RunId, String>, StoredRow);

/// What the rows thread sends: the rows in `first_position` order, a batch
/// at a time, then the connection back, its read transaction still open.
pub(super) enum RowMsg {
    /// The next rows, and the first position of the last of them.
    Batch(Vec<Keyed>, i64),
    /// Every row was sent.
    Done(Connection),
}

/// Reads every row whose first position is at least `start` (the rows of
/// runs begun in an archived part of the log are skipped) in
/// `first_position` order, and sends them to `tx` in batches of
/// [`ROW_BATCH`]; then the connection. Stops early when the receiver is
/// gone. Runs on a thread of its own beside the log's walk: `conn` is in a
/// read transaction, so every row comes from one commit.
pub(super) fn stream_rows(
    conn: Connection,
    start: Position,
    tx: &std::sync::mpsc::SyncSender<Result<RowMsg>>,
    returned: &std::sync::mpsc::Receiver<Vec<Keyed>>,
) {
    match send_rows(&conn, start, tx, returned) {
        Ok(true) => {
            let _ = tx.send(Ok(RowMsg::Done(conn)));
        }
        Ok(false) => {}
        Err(e) => {
            let _ = tx.send(Err(e));
        }
    }
}

/// [`stream_rows`]' rows; `false` when the receiver went away.
fn send_rows(
    conn: &Connection,
    start: Position,
    tx: &std::sync::mpsc::SyncSender<Result<RowMsg>>,
    returned: &std::sync::mpsc::Receiver<Vec<Keyed>>,
) -> Result<bool> {
    let mut stmt = conn.prepare(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_runs WHERE first_position >= ?1 ORDER BY first_position"
    ))?;
    let mut rows = stmt.query([start.0.min(i64::MAX as u64) as i64])?;
    let mut batch = Vec::with_capacity(ROW_BATCH);
    let mut last = i64::MIN;
    while let Some(row) = rows.next()? {
        let stored = StoredRow::read(row)?;
        last = int(stored.get(FIRST_POSITION)).unwrap_or(i64::MAX);
        batch.push(key(stored));
        if batch.len() == ROW_BATCH {
            // A batch the walk emptied and sent back: memory freed on
            // another thread is slow to be reused.
            let next = returned
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(ROW_BATCH));
            let full = std::mem::replace(&mut batch, next);
            if tx.send(Ok(RowMsg::Batch(full, last))).is_err() {
                return Ok(false);
            }
        }
    }
    if !batch.is_empty() && tx.send(Ok(RowMsg::Batch(batch, last))).is_err() {
        return Ok(false);
    }
    Ok(true)
}

fn key(stored: StoredRow) -> Keyed {
    let parsed = match stored.get(0) {
        ValueRef::Text(t) => uuid::Uuid::try_parse_ascii(t).ok().map(RunId::from_uuid),
        _ => None,
    };
    match parsed {
        Some(run_id) => (Ok(run_id), stored),
        None => (Err(display(stored.get(0))), stored),
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
        Some(row) => Ok(Some(StoredRow::read(row)?)),
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
    Real(f64),
    Text(&'a str),
    /// JSON text, as the projection writes it.
    Json(&'a [u8]),
}

impl Cell<'_> {
    fn opt_text<'a>(v: Option<&'a str>) -> Cell<'a> {
        v.map_or(Cell::Null, Cell::Text)
    }

    fn opt_int(v: Option<u64>) -> Cell<'static> {
        v.map_or(Cell::Null, |v| Cell::Int(v as i64))
    }

    /// Whether the stored value is this one (`buf` is scratch space).
    fn matches(&self, stored: ValueRef<'_>) -> bool {
        match (self, stored) {
            (Cell::Null, ValueRef::Null) => true,
            (Cell::Int(a), ValueRef::Integer(b)) => *a == b,
            (Cell::Real(a), ValueRef::Real(b)) => a.to_bits() == b.to_bits(),
            (Cell::Text(a), ValueRef::Text(b)) => a.as_bytes() == b,
            (Cell::Json(a), ValueRef::Text(b)) => {
                // The text the projection writes; else the same JSON value
                // written another way.
                *a == b
                    || serde_json::from_slice::<Value>(b)
                        .is_ok_and(|b| serde_json::from_slice::<Value>(a).is_ok_and(|a| a == b))
            }
            _ => false,
        }
    }

    fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Real(r) => format!("{r} (a real)"),
            Cell::Text(t) => quoted(t),
            Cell::Json(v) => shorten(&String::from_utf8_lossy(v)),
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
pub(super) fn display(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => format!("{r} (a real)"),
        ValueRef::Text(t) => {
            let t = String::from_utf8_lossy(t);
            if t.starts_with(['{', '[', '"']) {
                shorten(&t)
            } else {
                quoted(&t)
            }
        }
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
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
    let usage = run.usage();
    let cells: [Cell<'_>; 23] = [
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
        run.output.as_deref().map_or(Cell::Null, Cell::Json),
        Cell::opt_text(error_kind),
        Cell::opt_text(error_message),
        Cell::Int(run.started_at.0 as i64),
        Cell::opt_int(run.finished_at.map(|t| t.0)),
        Cell::opt_int(run.duration_micros),
        Cell::Int(run.first_position.0 as i64),
        Cell::Int(run.last_position.0 as i64),
        Cell::Int(run.paused_micros as i64),
        Cell::opt_text(usage.as_ref().map(|u| u.model.as_str())),
        Cell::opt_int(usage.as_ref().map(|u| u.input_tokens)),
        Cell::opt_int(usage.as_ref().map(|u| u.output_tokens)),
        usage
            .as_ref()
            .map_or(Cell::Null, |u| Cell::Real(u.cost_usd)),
    ];
    for (i, (cell, column)) in cells.iter().zip(COLUMNS).enumerate() {
        let value = stored.get(i);
        if !cell.matches(value) {
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
