//! Replay for audits: rebuild the AgentRun table (and its metrics) from the
//! log into a fresh file, from position 0 up to the end, a position or a
//! time, with a progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use neonhub_events::{Codec, Position, RecordedEvent, SharedStore, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agent_runs::{AgentRunsProjection, Mode, Prepared, prepare};
use crate::error::{Error, Result};
use crate::runner::Projection;

/// How much of the log a rebuild applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AsOf {
    /// Everything up to the head of the log when the rebuild reaches it.
    End,
    /// The events at positions up to and including this one: the table as it
    /// stood right after that event was applied.
    Position(Position),
    /// The events recorded at or before this time: the log's prefix up to the
    /// first event whose `recorded_at` is later.
    Time(Timestamp),
}

/// Whether to draw a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// On standard error when it is a terminal, hidden otherwise.
    #[default]
    Auto,
    /// Never.
    Hidden,
}

/// How to rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildOptions {
    /// How much of the log to apply.
    pub as_of: AsOf,
    /// Events per transaction.
    pub batch_size: usize,
    /// The progress bar.
    pub progress: Progress,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            as_of: AsOf::End,
            batch_size: 65_536,
            progress: Progress::Auto,
        }
    }
}

impl RebuildOptions {
    /// Rebuild as of `as_of` (see [`AsOf`]).
    pub fn as_of(mut self, as_of: AsOf) -> Self {
        self.as_of = as_of;
        self
    }

    /// Draw a progress bar or not.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Events per transaction (at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }
}

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildSummary {
    /// The file written.
    pub path: PathBuf,
    /// Events applied (read from the log and within the bound).
    pub events: u64,
    /// The rebuilt table's checkpoint: the position after the last event applied.
    pub checkpoint: Position,
    /// How long it took.
    pub elapsed: Duration,
}

impl RebuildSummary {
    /// Events applied per second.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn remove_db_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    context: format!("removing {}", Path::new(&p).display()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Rebuilds the AgentRun table from position 0 of `store` into the fresh
/// file `target`, as of `options.as_of`. The live table is never touched:
/// the rebuild writes `<target>.rebuilding` and renames it to `target` once
/// complete, so `target` never holds a partial table.
///
/// # Errors
/// [`Error::TargetExists`] if `target` exists; store and SQLite errors;
/// [`Error::Apply`] for an event that does not apply (the log needs an
/// upcaster, or is not a valid run log).
pub async fn rebuild(
    store: &SharedStore,
    target: impl AsRef<Path>,
    options: RebuildOptions,
) -> Result<RebuildSummary> {
    let target = target.as_ref();
    let partial = partial_path(target)?;

    let started = Instant::now();
    let head = store.head().await?;
    let end = match options.as_of {
        AsOf::Position(p) => head.min(p.next()),
        AsOf::End | AsOf::Time(_) => head,
    };
    let bar = progress_bar(options.progress, end.0);

    let mut projection = AgentRunsProjection::open_with(&partial, Mode::Bulk)?;
    let (tx, rx) = mpsc::channel::<Result<(Vec<Prepared>, u64)>>(2);
    let codec = projection.codec().clone();
    let batch_size = options.batch_size.max(1);
    // Reads ahead while the previous batch is written.
    let reader = tokio::spawn(read_ahead(
        store.clone(),
        codec,
        batch_size,
        options.as_of,
        tx,
    ));
    let events = apply_batches(&mut projection, rx, &reader, &bar).await?;
    let _ = reader.await;
    bar.finish_and_clear();
    let checkpoint = projection.checkpoint();
    projection.finish_bulk()?;
    std::fs::rename(&partial, target).map_err(|e| Error::Io {
        context: format!("renaming {} to {}", partial.display(), target.display()),
        source: e,
    })?;
    Ok(RebuildSummary {
        path: target.to_owned(),
        events,
        checkpoint,
        elapsed: started.elapsed(),
    })
}

/// The file a rebuild into `target` writes before renaming it to `target`,
/// cleared of any earlier attempt's leftovers.
///
/// # Errors
/// [`Error::TargetExists`] if `target` exists; I/O errors removing leftovers.
fn partial_path(target: &Path) -> Result<PathBuf> {
    if target.exists() {
        return Err(Error::TargetExists(target.to_owned()));
    }
    let mut partial = target.as_os_str().to_owned();
    partial.push(".rebuilding");
    let partial = PathBuf::from(partial);
    remove_db_files(&partial)?;
    Ok(partial)
}

/// The reader task of a rebuild: reads the log from position 0 in batches
/// of `batch_size`, cut to `as_of`, and sends each batch, decoded, with its
/// length, until the log or the bound ends, the receiver goes, or a read
/// fails (the error is sent).
async fn read_ahead(
    store: SharedStore,
    codec: Codec,
    batch_size: usize,
    as_of: AsOf,
    tx: mpsc::Sender<Result<(Vec<Prepared>, u64)>>,
) {
    let mut from = Position::START;
    loop {
        let batch = match store.read_all(from, batch_size).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let Some(last) = batch.last() else { return };
        from = last.position.next();
        let mut batch = batch;
        let done = cut_to(&mut batch, as_of);
        // Decoding here, on the reader's thread, overlaps it with the
        // writes of the previous batch.
        let prepared = (prepare(&codec, &batch), batch.len() as u64);
        if !batch.is_empty() && tx.send(Ok(prepared)).await.is_err() {
            return;
        }
        if done {
            return;
        }
    }
}

/// Drops the events of `batch` past `as_of`. Returns whether it dropped any
/// (the bound is reached: nothing after this batch applies).
fn cut_to(batch: &mut Vec<RecordedEvent>, as_of: AsOf) -> bool {
    let before = batch.len();
    batch.retain(|e| match as_of {
        AsOf::End => true,
        AsOf::Position(p) => e.position <= p,
        AsOf::Time(_) => true,
    });
    if let AsOf::Time(t) = as_of
        && let Some(cut) = batch.iter().position(|e| e.recorded_at > t)
    {
        batch.truncate(cut);
    }
    batch.len() < before
}

/// Applies the batches `rx` receives to `projection`, moving `bar`; stops
/// `reader` on a read error. Returns the number of events applied.
async fn apply_batches(
    projection: &mut AgentRunsProjection,
    mut rx: mpsc::Receiver<Result<(Vec<Prepared>, u64)>>,
    reader: &JoinHandle<()>,
    bar: &ProgressBar,
) -> Result<u64> {
    let mut events = 0u64;
    while let Some(batch) = rx.recv().await {
        let (batch, len) = match batch {
            Ok(b) => b,
            Err(e) => {
                reader.abort();
                return Err(e);
            }
        };
        projection.apply_prepared(batch)?;
        events += len;
        bar.set_position(projection.checkpoint().0);
    }
    Ok(events)
}

fn progress_bar(progress: Progress, len: u64) -> ProgressBar {
    let draw = match progress {
        Progress::Auto if std::io::stderr().is_terminal() => ProgressDrawTarget::stderr(),
        _ => ProgressDrawTarget::hidden(),
    };
    let bar = ProgressBar::with_draw_target(Some(len), draw);
    if let Ok(style) =
        ProgressStyle::with_template("replay {bar:40} {pos}/{len} events  {per_sec}  ETA {eta}")
    {
        bar.set_style(style);
    }
    bar
}
