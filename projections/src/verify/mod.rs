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

use std::fmt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};

use neonhub_events::{Codec, EventStore, Position, RecordedEvent, RunId, VerifiedRecord};
use rustc_hash::FxHashMap;

use self::expected::{Expected, ExpectedMetrics, Fact, SeriesValue, series_name};
use self::table::{Keyed, RowMsg, StoredRow};
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

/// The rows as the rows thread sends them ([`table::stream_rows`]).
struct Rows {
    rx: Receiver<Result<RowMsg>>,
    /// Emptied batches, sent back to be filled again.
    spent: mpsc::Sender<Vec<Keyed>>,
    /// The first position of the last row received.
    last: i64,
    /// The connection, once every row was received.
    conn: Option<rusqlite::Connection>,
}

impl Rows {
    /// The next batch of rows; `None` once all were received.
    fn next_batch(&mut self) -> Result<Option<Vec<Keyed>>> {
        if self.conn.is_some() {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(RowMsg::Batch(rows, last))) => {
                self.last = last;
                Ok(Some(rows))
            }
            Ok(Ok(RowMsg::Done(conn))) => {
                self.conn = Some(conn);
                Ok(None)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(crate::Error::Worker("the thread reading the table's rows")),
        }
    }
}

/// The walk over the log, with the rows read so far that wait for their run.
struct Walk {
    rows_in: Rows,
    /// Runs seen in the log and not yet compared.
    open: FxHashMap<RunId, Expected>,
    /// Rows read and not yet compared.
    rows: FxHashMap<RunId, StoredRow>,
    metrics: ExpectedMetrics,
    found: Found,
    runs: u64,
    run_events: u64,
}

impl Walk {
    /// Receives the rows whose key is at most `upto`.
    fn read_rows(&mut self, upto: Position) -> Result<()> {
        let upto = upto.0.min(i64::MAX as u64) as i64;
        while self.rows_in.last <= upto {
            let Some(batch) = self.rows_in.next_batch()? else {
                break;
            };
            self.take_batch(batch);
        }
        Ok(())
    }

    /// Moves the rows just read into `rows`.
    fn take_batch(&mut self, mut batch: Vec<Keyed>) {
        for (key, row) in batch.drain(..) {
            match key {
                Ok(run_id) => {
                    if let Some(old) = self.rows.insert(run_id, row) {
                        self.found.push(Mismatch::UnexpectedRow {
                            run_id: run_id.to_string(),
                            first_position: old.first_position(),
                        });
                    }
                }
                Err(run_id) => self.found.push(Mismatch::UnexpectedRow {
                    run_id,
                    first_position: row.first_position(),
                }),
            }
        }
        let _ = self.rows_in.spent.send(batch);
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
        fact: Fact,
    ) -> Result<()> {
        match (self.open.get_mut(&run_id), fact) {
            (Some(run), fact) => {
                let transition = run.apply(fact, position);
                self.metrics.record(run, transition);
            }
            (None, Fact::Started(s)) if s.attempt == 1 => {
                self.runs += 1;
                self.metrics.started();
                self.open.insert(run_id, Expected::start(s, position));
            }
            (None, fact) => {
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
                let transition = run.apply(fact, position);
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
        while let Some(batch) = self.rows_in.next_batch()? {
            self.take_batch(batch);
            self.match_rows();
        }
        let mut open: Vec<Expected> = self.open.drain().map(|(_, run)| run).collect();
        open.sort_by_key(|r| r.first_position);
        let conn = self.rows_in.conn.as_ref().expect("every row was received");
        let found = &mut self.found;
        for run in open {
            match table::load(conn, run.run_id)? {
                Some(row) => table::compare(&run, &row, &mut |m| found.push(m)),
                None => found.push(Mismatch::MissingRow {
                    run_id: run.run_id,
                    first_position: run.first_position,
                }),
            }
        }
        Ok(())
    }

    /// The table's connection, back from the rows thread after
    /// [`Walk::finish`] received every row.
    fn conn(&self) -> &rusqlite::Connection {
        self.rows_in.conn.as_ref().expect("every row was received")
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
        let (mut stored, in_flight) = table::stored_metrics(self.conn())?;
        let expected = self.metrics.series();
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

/// Pages of the log in the decoder's queue and batches of rows in the rows
/// thread's.
const IN_FLIGHT: usize = 3;

/// Run events decoded, in order.
type Facts = Vec<(RunId, Position, Fact)>;

/// A page of the log with its run events decoded.
struct DecodedPage {
    /// The position of the page's last event.
    upto: Position,
    /// Its run events before the checkpoint, in order.
    events: Facts,
    /// The page itself, sent back to be freed by the task that allocated
    /// it (memory freed on another thread is slow to be reused).
    page: Vec<RecordedEvent>,
}

/// The decoding stage: decodes the run events before `checkpoint` of every
/// page received, in order, until the sender goes away.
fn decode_pages(
    pages: &Receiver<Vec<RecordedEvent>>,
    out: &mpsc::SyncSender<Result<DecodedPage>>,
    returned: &Receiver<Facts>,
    checkpoint: Position,
) {
    let codec = Codec::new();
    let mut buf = Vec::with_capacity(4096);
    while let Ok(page) = pages.recv() {
        let Some(upto) = page.last().map(|e| e.position) else {
            continue;
        };
        let mut events = returned.try_recv().unwrap_or_default();
        let decoded = page
            .iter()
            .take_while(|e| e.position < checkpoint)
            .filter_map(|e| e.stream.run_id().map(|run_id| (run_id, e)))
            .try_for_each(|(run_id, e)| {
                let event = codec.decode_payload_text(&e.event_type, &e.payload, e.position)?;
                events.push((run_id, e.position, Fact::of_text(event, &mut buf)));
                Ok(())
            })
            .map(|()| DecodedPage { upto, events, page });
        let failed = decoded.is_err();
        if out.send(decoded).is_err() || failed {
            return;
        }
    }
}

/// Run events of the log as they are stored, a batch at a time, from a
/// [`RunEventFeed`] to [`verify_fed`]. Batches are sent back to be filled
/// again, so memory stays a few batches.
#[derive(Debug, Default)]
struct RawRunEvents {
    /// Each event's type name then its payload, one after the other.
    bytes: Vec<u8>,
    /// Each event's run, position, and where its type name and payload end
    /// in `bytes`.
    events: Vec<(RunId, Position, usize, usize)>,
}

impl RawRunEvents {
    /// Adds the event at `position` of run `run_id`, stored as `event_type`
    /// with `payload`. Events are added in log order.
    fn push(&mut self, run_id: RunId, position: Position, event_type: &[u8], payload: &[u8]) {
        self.bytes.extend_from_slice(event_type);
        let type_end = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.events
            .push((run_id, position, type_end, self.bytes.len()));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.events.clear();
    }

    /// Its events: run, position, type name, payload.
    fn iter(&self) -> impl Iterator<Item = (RunId, Position, &[u8], &[u8])> + '_ {
        let mut start = 0;
        self.events
            .iter()
            .map(move |&(run_id, position, type_end, end)| {
                let event_type = &self.bytes[start..type_end];
                start = end;
                (run_id, position, event_type, &self.bytes[type_end..end])
            })
    }
}

/// The sending side of [`verify_fed`]: a reader that checks the log itself
/// (`audit verify` on the embedded log, whose hash chain check reads every
/// record) shows it each record in order
/// ([`neonhub_events::EmbeddedLog::verify_each`]), and the check gets the
/// run events without reading the log a second time. Made with
/// [`FedEvents`] by [`run_event_feed`].
#[derive(Debug)]
pub struct RunEventFeed {
    batches: mpsc::SyncSender<RawRunEvents>,
    /// Batches sent back, to be filled again.
    returned: Receiver<RawRunEvents>,
    batch: RawRunEvents,
    batch_events: usize,
    /// `false` once the check wants no more (it reached its checkpoint, or
    /// stopped).
    feeding: bool,
}

/// The receiving side of a [`RunEventFeed`], for [`verify_fed`].
#[derive(Debug)]
pub struct FedEvents {
    batches: Receiver<RawRunEvents>,
    spent: mpsc::Sender<RawRunEvents>,
}

/// A feed handing over run events in batches of `batch_events`, with at
/// most `queued` batches waiting.
pub fn run_event_feed(batch_events: usize, queued: usize) -> (RunEventFeed, FedEvents) {
    let (batches, received) = mpsc::sync_channel(queued);
    let (spent, returned) = mpsc::channel();
    (
        RunEventFeed {
            batches,
            returned,
            batch: RawRunEvents::default(),
            batch_events: batch_events.max(1),
            feeding: true,
        },
        FedEvents {
            batches: received,
            spent,
        },
    )
}

impl RunEventFeed {
    /// Takes the next record of the log (the run events are kept).
    pub fn visit(&mut self, record: VerifiedRecord<'_>) {
        let Some(run_id) = record.run_id().filter(|_| self.feeding) else {
            return;
        };
        self.batch
            .push(run_id, record.position, record.event_type, record.payload);
        if self.batch.events.len() >= self.batch_events {
            self.send();
        }
    }

    /// Hands over what is left: the log has been read.
    pub fn finish(mut self) {
        if self.feeding && !self.batch.events.is_empty() {
            self.send();
        }
    }

    /// Hands the batch over and takes an emptied one in its place.
    fn send(&mut self) {
        let mut next = self.returned.try_recv().unwrap_or_default();
        next.clear();
        let full = std::mem::replace(&mut self.batch, next);
        self.feeding = self.batches.send(full).is_ok();
    }
}

/// The decoding stage of [`verify_fed`]: as [`decode_pages`], for batches
/// handed over, each sent back on `spent` once decoded. Stops at the first
/// event at or past the checkpoint: the events after it are not the
/// table's (the caller decodes them).
fn decode_fed(
    batches: &Receiver<RawRunEvents>,
    spent: &mpsc::Sender<RawRunEvents>,
    out: &mpsc::SyncSender<Result<DecodedPage>>,
    returned: &Receiver<Facts>,
    checkpoint: Position,
) {
    let codec = Codec::new();
    let mut buf = Vec::with_capacity(4096);
    while let Ok(batch) = batches.recv() {
        let mut reached = false;
        let mut events = returned.try_recv().unwrap_or_default();
        let decoded = batch
            .iter()
            .take_while(|(_, position, _, _)| {
                reached = *position >= checkpoint;
                !reached
            })
            .try_for_each(|(run_id, position, event_type, payload)| {
                let event_type = String::from_utf8_lossy(event_type);
                let event = codec.decode_payload_text(&event_type, payload, position)?;
                events.push((run_id, position, Fact::of_text(event, &mut buf)));
                Ok(())
            });
        let decoded = decoded.map(|()| DecodedPage {
            upto: events.last().map_or(Position::START, |e| e.1),
            events,
            page: Vec::new(),
        });
        let _ = spent.send(batch);
        let failed = decoded.is_err();
        if out.send(decoded).is_err() || failed || reached {
            return;
        }
    }
}

/// Starts a thread of the check.
fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| crate::Error::Io {
            context: format!("start the {name} thread"),
            source: e,
        })
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
    let mut buf = Vec::new();
    for recorded in events.iter().filter(|e| e.position < before) {
        match (&mut run, Fact::of(codec.decode(recorded)?, &mut buf)) {
            (Some(run), fact) => {
                run.apply(fact, recorded.position);
            }
            (None, Fact::Started(s)) => {
                run = Some(Expected::start(s, recorded.position));
            }
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
    check(store, db.as_ref(), start, None).await
}

/// [`verify_from`] of the events a [`RunEventFeed`] hands over, in log
/// order from `start` (at least up to the table's checkpoint), instead of
/// reading them from `store` (which still serves the rare read of one run's
/// stream, and the head). The check stops taking events at the first one at
/// or past the table's checkpoint; the feed then stops keeping them.
///
/// # Errors
/// As [`verify`].
pub async fn verify_fed(
    store: &dyn EventStore,
    db: impl AsRef<Path>,
    start: Position,
    events: FedEvents,
) -> Result<VerifyReport> {
    check(store, db.as_ref(), start, Some(events)).await
}

/// [`verify_from`] and [`verify_fed`].
async fn check(
    store: &dyn EventStore,
    db: &Path,
    start: Position,
    fed: Option<FedEvents>,
) -> Result<VerifyReport> {
    let conn = open_for_check(db)?;
    // One read transaction: rows, metrics and checkpoint as of one commit.
    conn.execute_batch("BEGIN")?;
    let checkpoint = read_checkpoint(&conn)?;
    let head = store.head().await?;
    let codec = Codec::new();
    // Three stages side by side: a thread reads the table's rows in their
    // key's order, a thread decodes the log's pages that this task reads,
    // and this task walks the decoded events and the rows together. On two
    // cores (and beside the hash chain's check) the walk takes about the
    // time of its longest stage, not of their sum.
    let (row_tx, row_rx) = mpsc::sync_channel(IN_FLIGHT);
    let (rows_spent, rows_returned) = mpsc::channel();
    let rows_thread = spawn("audit-rows", move || {
        table::stream_rows(conn, start, &row_tx, &rows_returned);
    })?;
    let (raw_tx, raw_rx) = mpsc::channel::<Vec<RecordedEvent>>();
    // Bounded: a decoder ahead of the walk waits (memory stays a few pages).
    let (decoded_tx, decoded_rx) = mpsc::sync_channel(IN_FLIGHT);
    let is_fed = fed.is_some();
    // Emptied pages of decoded events go back to the decoder.
    let (facts_spent, facts_returned) = mpsc::channel::<Facts>();
    let decode_thread = spawn("audit-decode", move || match fed {
        Some(FedEvents { batches, spent }) => {
            decode_fed(&batches, &spent, &decoded_tx, &facts_returned, checkpoint)
        }
        None => decode_pages(&raw_rx, &decoded_tx, &facts_returned, checkpoint),
    })?;
    let mut walk = Walk {
        rows_in: Rows {
            rx: row_rx,
            spent: rows_spent,
            last: i64::MIN,
            conn: None,
        },
        open: FxHashMap::default(),
        rows: FxHashMap::default(),
        metrics: ExpectedMetrics::default(),
        found: Found::default(),
        runs: 0,
        run_events: 0,
    };
    let walked = async {
        let mut from = start;
        let mut in_flight = 0usize;
        // Fed: the decoder receives the events itself, and ends the pages.
        let mut read_all = from >= checkpoint || is_fed;
        loop {
            // Keep the decoder a few pages ahead of the walk.
            while !read_all && in_flight < IN_FLIGHT {
                let page = store.read_all(from, LOG_PAGE).await?;
                match page.last() {
                    Some(last) if last.position < checkpoint => from = last.position.next(),
                    Some(_) => read_all = true,
                    None => {
                        read_all = true;
                        break;
                    }
                }
                raw_tx
                    .send(page)
                    .map_err(|_| crate::Error::Worker("the thread decoding the log"))?;
                in_flight += 1;
            }
            if !is_fed && in_flight == 0 {
                return Ok::<(), crate::Error>(());
            }
            // Fed, the decoder ends the pages when it ends (a panic is
            // told apart when it is joined below).
            let Ok(decoded) = decoded_rx.recv() else {
                return Ok(());
            };
            let DecodedPage {
                upto,
                mut events,
                page,
            } = decoded?;
            in_flight = in_flight.saturating_sub(1);
            walk.read_rows(upto.min(checkpoint))?;
            for (run_id, position, fact) in events.drain(..) {
                walk.run_events += 1;
                walk.event(store, &codec, run_id, position, fact).await?;
            }
            let _ = facts_spent.send(events);
            drop(page);
        }
    }
    .await;
    drop(raw_tx);
    drop(decoded_rx);
    let decoded = decode_thread.join();
    walked?;
    decoded.map_err(|_| crate::Error::Worker("the thread decoding the log"))?;
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
    let conn = walk.rows_in.conn.take().expect("every row was received");
    let rows = table::row_count(&conn)?;
    conn.execute_batch("COMMIT")?;
    drop(conn);
    let _ = rows_thread.join();
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
