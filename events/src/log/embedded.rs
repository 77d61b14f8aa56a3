//! `EmbeddedLog`: the handle users open, its options, and its `EventStore`
//! implementation on top of the writer thread and the index.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use super::format::{self, FRAME_LEN};
use super::handles::{Handles, MAX_OPEN};
use super::index::{Body, Index, MemBody, stream_key};
use super::io::{LogFs, StdFs};
use super::reader::{self, LogSubscription};
use super::recovery::{self, Access, TornTail};
use super::segidx::{self, SegmentMeta};
use super::verify::{self, VerifiedRecord, VerifyReport};
use super::writer::{AppendRequest, Writer};
use crate::error::{Error, Result};
use crate::ids::{Position, StreamId};
use crate::store::{
    AppendResult, Direction, EventData, EventStore, ExpectedRevision, ReadFrom, RecordedEvent,
    Subscription,
};

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// After the append is on disk (`fdatasync`): a crash of the process or
    /// of the machine loses nothing acknowledged. The default.
    #[default]
    Durable,
    /// After the append is handed to the OS (`write`), synced in the
    /// background within about 200 ms: a crash of the process loses nothing,
    /// a crash of the machine may lose the last acknowledged appends.
    Buffered,
}

/// How to open an [`EmbeddedLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it reaches this size.
    pub segment_size: u64,
    /// Largest event accepted, envelope included (default 4 MiB).
    pub max_event_size: usize,
    /// Largest append batch accepted, all events together (default 64 MiB).
    pub max_batch_size: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Durable,
            segment_size: 64 << 20,
            max_event_size: 4 << 20,
            max_batch_size: 64 << 20,
        }
    }
}

impl LogOptions {
    /// These options with `durability`.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// These options with segments of `bytes`.
    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// These options with events of at most `bytes`.
    pub fn with_max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    fn validate(&self) -> Result<()> {
        let limit = 1u64 << 30;
        if self.segment_size < 4096 || self.segment_size > limit {
            return Err(Error::InvalidInput(format!(
                "segment size {} is outside 4 KiB..=1 GiB",
                self.segment_size
            )));
        }
        if self.max_event_size > format::MAX_BODY_LEN || self.max_batch_size as u64 > limit {
            return Err(Error::InvalidInput(
                "max event size must be at most 256 MiB and max batch size at most 1 GiB"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// Whether the log's writer can write, for a readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterHealth {
    /// The last write succeeded.
    Ok,
    /// The last write or sync failed (a full disk, an I/O error): its
    /// appends were refused and taken back. The writer tries again with the
    /// next append and is `Ok` once one succeeds; report not ready (HTTP 503)
    /// with `reason` meanwhile.
    Failing {
        /// The error, naming what failed.
        reason: String,
    },
    /// The handle was opened read-only: it has no writer.
    ReadOnly,
    /// The log was closed.
    Closed,
}

/// State shared by the handle, the writer thread and subscriptions.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: LogOptions,
    pub(crate) fs: Arc<dyn LogFs>,
    /// Read handles to the segments, a bounded number open.
    pub(crate) handles: Handles,
    pub(crate) index: RwLock<Index>,
    /// The head (next position), published after each group commit.
    pub(crate) head_tx: watch::Sender<Position>,
    /// Set by the writer when a write fails and when one succeeds again.
    pub(crate) health: Mutex<WriterHealth>,
    /// Threads writing the index files of sealed segments.
    indexers: Mutex<Vec<JoinHandle<()>>>,
    /// The live archive manifest as last seen (length, modification time,
    /// inode), to notice an archive run beside this process.
    pub(crate) archive_seen: Mutex<Option<(u64, std::time::SystemTime, u64)>>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        dir: PathBuf,
        options: LogOptions,
        fs: Arc<dyn LogFs>,
        index: Index,
    ) -> Arc<Self> {
        let head = index.head;
        Arc::new(Shared {
            dir,
            options,
            handles: Handles::new(fs.clone(), MAX_OPEN),
            fs,
            index: RwLock::new(index),
            head_tx: watch::Sender::new(head),
            health: Mutex::new(WriterHealth::Ok),
            indexers: Mutex::new(Vec::new()),
            archive_seen: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits for the index files being written.
    pub(crate) fn join_indexers(&self) {
        let handles = std::mem::take(&mut *self.indexers.lock().expect("indexers lock"));
        for h in handles {
            let _ = h.join();
        }
    }

    /// Stops appends and wakes every subscription.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.head_tx.send_modify(|_| {});
    }
}

/// Writes the index file of the sealed `segment` on a thread of its own,
/// then swaps it in for the segment's in-memory index. A failure leaves the
/// in-memory index in place (the next open writes the file).
pub(crate) fn index_in_background(
    shared: &Arc<Shared>,
    segment: Arc<Path>,
    body: Arc<MemBody>,
    meta: SegmentMeta,
) {
    let shared2 = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("neonhub-log-indexer".into())
        .spawn(move || {
            let shared = shared2;
            let written = segidx::write_and_load(shared.fs.as_ref(), &segment, &body, &meta);
            match written {
                Ok(sealed) => {
                    let mut index = shared.index.write().expect("index lock");
                    if let Some(seg) = index
                        .segments
                        .iter_mut()
                        .find(|s| s.first == meta.first && matches!(s.body, Body::Frozen(_)))
                    {
                        seg.body = Body::Sealed(Arc::new(sealed));
                    }
                }
                Err(e) => tracing::warn!(
                    segment = %segment.display(),
                    error = %e,
                    "could not write the index file of a sealed segment; it stays indexed in memory and the next open writes it"
                ),
            }
        });
    match spawned {
        Ok(handle) => {
            let mut indexers = shared.indexers.lock().expect("indexers lock");
            indexers.retain(|h| !h.is_finished());
            indexers.push(handle);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not start a thread to write a segment's index file")
        }
    }
}

/// The embedded event log: a directory of append-only segment files, the
/// default [`EventStore`]. See the `log::format` module for the bytes on disk.
///
/// One process at a time: opening takes an exclusive lock on the directory.
/// Appends go to one writer thread that commits every waiting append with a
/// single `fdatasync`; reads and subscriptions only ever see acknowledged
/// events. Dropping the handle (or [`EmbeddedLog::close`]) flushes and
/// releases the directory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> neonhub_events::Result<()> {
/// use neonhub_events::*;
/// let dir = tempfile::tempdir().unwrap();
/// let log = EmbeddedLog::open(dir.path(), LogOptions::default())?;
/// let stream = StreamId::new("greetings")?;
/// let event = EventData {
///     id: EventId::new(),
///     event_type: "greeting.v1".into(),
///     metadata: Metadata::default(),
///     payload: b"hello".to_vec(),
/// };
/// let written = log.append(&stream, ExpectedRevision::NoStream, vec![event]).await?;
/// assert_eq!(written.last_position, Position(0));
/// let all = log.read_all(Position::START, 10).await?;
/// assert_eq!(all[0].payload, b"hello");
/// # Ok(()) }
/// ```
pub struct EmbeddedLog {
    pub(crate) shared: Arc<Shared>,
    tx: RwLock<Option<Sender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Whether this handle may append.
    writable: bool,
    /// The torn tail found when opening (cut, if writable).
    torn: Option<TornTail>,
    /// The directory locks (the `LOCK` file and the directory itself);
    /// empty for a read-only handle.
    _locks: Vec<File>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.shared.dir)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// The name of the lock file in the data directory.
    pub const LOCK_FILE: &'static str = "LOCK";

    /// Opens (or creates) the log in `dir`: takes the directory lock, checks
    /// every segment, cuts a torn tail (keeping its bytes in a quarantine
    /// file beside the segment), and starts the writer. A new directory's
    /// parent is synced, so the directory survives a power loss.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open; [`Error::Corruption`]
    /// or [`Error::BadSegment`] naming the file (and offset) when the log is
    /// damaged; I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<Self> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let fs: Arc<dyn LogFs> = Arc::new(StdFs);
        // The directories about to be created, deepest first: each one's
        // parent is synced so that the new entries survive a power loss.
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !fs.exists(p))
            .collect();
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        for created in missing {
            let parent = created
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fs.sync_dir(parent)
                .map_err(|e| Error::io(format!("sync directory {}", parent.display()), e))?;
        }
        let locks = lock_dir(&dir)?;
        Self::open_in(fs, dir, options, locks)
    }

    /// Opens the log in `dir` on the file system `fs`, with `locks` already
    /// held.
    pub(crate) fn open_in(
        fs: Arc<dyn LogFs>,
        dir: PathBuf,
        options: LogOptions,
        locks: Vec<File>,
    ) -> Result<Self> {
        let recovered = recovery::recover(&fs, &dir, Access::Write)?;
        let shared = Shared::new(dir, options, fs, recovered.index);
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            shared.clone(),
            recovered.writer.expect("write access resumes a writer"),
        );
        let handle = std::thread::Builder::new()
            .name("neonhub-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("start the log writer thread", e))?;
        Ok(Self {
            shared,
            tx: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            writable: true,
            torn: recovered.torn,
            _locks: locks,
        })
    }

    /// Opens the log in `dir` for reading only, beside the process that holds
    /// it open (an audit or a replay while `neonhub serve` runs). It takes no
    /// lock and changes nothing on disk: it creates no file or directory and
    /// cuts nothing; a torn tail is left unread (see
    /// [`EmbeddedLog::torn_tail`]). It holds the acknowledged events as of
    /// opening (an append in progress is left out), and does not follow later
    /// appends: subscriptions wait after the last of those events. Appends
    /// fail with [`Error::ReadOnly`].
    ///
    /// # Errors
    /// As [`EmbeddedLog::open`], but never [`Error::Locked`];
    /// [`Error::NotALog`] if `dir` does not exist or holds no segment.
    pub fn open_read_only(dir: impl AsRef<Path>, options: LogOptions) -> Result<Self> {
        Self::open_read_only_in(Arc::new(StdFs), dir.as_ref().to_path_buf(), options)
    }

    /// [`EmbeddedLog::open_read_only`] on the file system `fs`.
    pub(crate) fn open_read_only_in(
        fs: Arc<dyn LogFs>,
        dir: PathBuf,
        options: LogOptions,
    ) -> Result<Self> {
        options.validate()?;
        if !fs.exists(&dir) {
            return Err(Error::NotALog { dir });
        }
        let recovered = recovery::recover(&fs, &dir, Access::ReadOnly)?;
        Ok(Self {
            shared: Shared::new(dir, options, fs, recovered.index),
            tx: RwLock::new(None),
            writer: Mutex::new(None),
            writable: false,
            torn: recovered.torn,
            _locks: Vec::new(),
        })
    }

    /// Repairs a log that refuses to open on corruption, when an operator
    /// asks (`neonhub log repair`): cuts it at the damage and keeps every
    /// removed byte in quarantine files beside the segments (the cut tail as
    /// `<segment>.quarantine-<offset>`, later segments renamed whole).
    /// Returns what was cut, empty when the log opens as it is. Changes
    /// nothing else: a torn tail is left for the next open.
    ///
    /// # Errors
    /// [`Error::Locked`] while the log is open elsewhere; [`Error::NotALog`];
    /// I/O errors.
    pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<super::repair::Repair>> {
        super::repair::repair(dir.as_ref())
    }

    /// Moves the sealed segments of the log in `dir` whose newest event was
    /// recorded before `before` out of the live log into `to`, compressed
    /// (zstd), oldest first (`neonhub log archive`). The chain stays
    /// provable: the live log's manifest (`ARCHIVE.json`) records each
    /// archived segment's record count, last chain value, time range, file
    /// and checksum, and the live log continues the last chain value.
    /// Never archives the segment being written, nor events at or after
    /// `upto` (pass the AgentRun table's checkpoint, so that archived runs
    /// keep their rows; `Position(u64::MAX)` for no limit). Runs beside a process that
    /// holds the log open (`serve`): that process's reads of archived events
    /// answer [`Error::Archived`].
    ///
    /// # Errors
    /// [`Error::Locked`] while another archive runs; [`Error::NotALog`];
    /// [`Error::ChainBroken`] or [`Error::Corruption`] when the segments do
    /// not continue the archive; I/O errors (nothing is removed from the
    /// live log unless the archive was written and synced).
    pub fn archive(
        dir: impl AsRef<Path>,
        before: crate::ids::Timestamp,
        upto: Position,
        to: impl AsRef<Path>,
    ) -> Result<super::archive::ArchiveReport> {
        super::archive::archive(dir.as_ref(), before, upto, to.as_ref())
    }

    /// The first position still in the live log: the events before it were
    /// archived ([`EmbeddedLog::archive`]); `Position(0)` when none were.
    pub fn archived_before(&self) -> Position {
        let _ = super::archive::catch_up(&self.shared);
        self.shared.index.read().expect("index lock").archive.end()
    }

    /// Where the archive manifest says the archived segments went (the
    /// newest run's directory), `None` when nothing is archived.
    pub fn archive_dir(&self) -> Option<PathBuf> {
        let index = self.shared.index.read().expect("index lock");
        index
            .archive
            .manifest
            .segments
            .last()
            .map(|s| s.archive.clone())
    }

    /// Verifies across the archive in `archive` and the live log: every
    /// archived segment (its checksum, every record's CRC, the chain from
    /// the first event of the log), then the live log continuing it, as
    /// [`EmbeddedLog::verify`]. The report's `archived` is 0: nothing is
    /// taken on trust.
    ///
    /// # Errors
    /// [`Error::ArchiveDamaged`] naming a missing or damaged archived file or
    /// manifest; [`Error::ChainBroken`] or [`Error::Corruption`] naming the
    /// file; as [`EmbeddedLog::verify`].
    pub fn verify_with_archive(&self, archive: impl AsRef<Path>) -> Result<VerifyReport> {
        self.verify_each(Some(archive.as_ref()), |_| {})
    }

    /// The chain value recorded with the archived event at `position`, read
    /// from the archive directory `archive` (the records before it in its
    /// segment are checked on the way); `None` when `position` was not
    /// archived. After a sound [`EmbeddedLog::verify_with_archive`] it is the
    /// chain value of the whole history up to `position`, as
    /// [`EmbeddedLog::chain_at`] gives for live events.
    ///
    /// # Errors
    /// [`Error::ArchiveDamaged`], [`Error::Corruption`] or
    /// [`Error::ChainBroken`] naming the archived file.
    pub fn chain_in_archive(
        &self,
        archive: impl AsRef<Path>,
        position: Position,
    ) -> Result<Option<[u8; 32]>> {
        super::archive::chain_in_archive(&self.shared, archive.as_ref(), position)
    }

    /// Whether this handle was opened with [`EmbeddedLog::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        !self.writable
    }

    /// The torn tail found when the log was opened: cut and quarantined by a
    /// writable handle, left unread by a read-only one. `None` when the log
    /// ended cleanly.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Whether the writer can write: [`WriterHealth::Failing`] with the
    /// reason while writes fail (appends are refused meanwhile), for a
    /// readiness check.
    pub fn writer_health(&self) -> WriterHealth {
        if !self.writable {
            return WriterHealth::ReadOnly;
        }
        if self.shared.is_closed() {
            return WriterHealth::Closed;
        }
        self.shared.health.lock().expect("health lock").clone()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// How many streams the log holds.
    pub fn stream_count(&self) -> u64 {
        self.shared.index.read().expect("index lock").stream_count()
    }

    /// Checks every record's checksum and the whole hash chain, and returns
    /// the number of events and the head's chain value.
    ///
    /// # Errors
    /// [`Error::ChainBroken`] or [`Error::Corruption`] at the first bad record.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_each(None, |_| {})
    }

    /// [`EmbeddedLog::verify`] (across the archive in `archive` when given,
    /// as [`EmbeddedLog::verify_with_archive`]) that shows every record of
    /// the live log to `visit` once its checksum and chain value held, in
    /// order: a caller that needs the events too (`audit verify` comparing
    /// the table) reads the log once.
    ///
    /// # Errors
    /// As [`EmbeddedLog::verify`] and [`EmbeddedLog::verify_with_archive`];
    /// `visit` has seen the records before the first bad one.
    pub fn verify_each(
        &self,
        archive: Option<&Path>,
        mut visit: impl FnMut(VerifiedRecord<'_>),
    ) -> Result<VerifyReport> {
        super::archive::catch_up(&self.shared)?;
        if let Some(dir) = archive {
            super::archive::verify_archive(&self.shared, dir)?;
        }
        let mut report = verify::verify(&self.shared, &mut visit)?;
        if archive.is_some() {
            report.archived = 0;
        }
        Ok(report)
    }

    /// The chain value recorded with the event at `position` (the hash
    /// chain up to and including it), `None` when the log does not hold that
    /// position. Only the record's own checksum is checked here: after a
    /// sound [`EmbeddedLog::verify`], it is the chain value of the whole
    /// history up to `position`, which an anchor written down earlier must
    /// equal.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the record does not read back; I/O errors.
    pub fn chain_at(&self, position: Position) -> Result<Option<[u8; 32]>> {
        super::archive::catch_up(&self.shared)?;
        {
            let index = self.shared.index.read().expect("index lock");
            if position < index.archive.end() {
                return Err(Error::Archived {
                    stream: None,
                    position,
                    archive: index.archive.dir_of(position),
                });
            }
        }
        let Some(at) = reader::locate(&self.shared, position)? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; at.len];
        self.shared
            .handles
            .get(&at.path)?
            .read_exact_at(&mut buf, at.offset)
            .map_err(|e| Error::io(format!("read {}", at.path.display()), e))?;
        // The first record of a group follows its group header.
        let skip = if format::is_group_header(&buf) {
            format::GROUP_HEADER_LEN
        } else {
            0
        };
        let record = format::decode_record(&buf[skip..], format::MAX_BODY_LEN).map_err(|e| {
            Error::Corruption {
                segment: at.path.to_path_buf(),
                offset: at.offset,
                reason: format!("{e:?} on read"),
            }
        })?;
        Ok(Some(record.chain()))
    }

    /// Stops accepting appends, writes and syncs what was accepted, and stops
    /// the writer. Reads keep working; subscriptions end with
    /// [`Error::Closed`]. Idempotent. The directory lock is released when
    /// the handle is dropped.
    pub fn close(&self) {
        if self.is_read_only() {
            return;
        }
        drop(self.tx.write().expect("sender lock").take());
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
        self.shared.join_indexers();
        self.shared.mark_closed();
    }

    fn check_batch(&self, stream: &StreamId, events: &[EventData]) -> Result<usize> {
        if events.is_empty() {
            return Err(Error::InvalidInput(
                "an append needs at least one event".to_string(),
            ));
        }
        let max = self.shared.options.max_event_size;
        let mut total = 0usize;
        for event in events {
            if event.event_type.is_empty() || event.event_type.len() > usize::from(u16::MAX) {
                return Err(Error::InvalidInput(format!(
                    "event type names are 1 to 65535 bytes, got {}",
                    event.event_type.len()
                )));
            }
            let size = FRAME_LEN + format::encoded_body_len(event, stream);
            if size > max {
                return Err(Error::EventTooLarge { size, max });
            }
            total += size;
        }
        if total > self.shared.options.max_batch_size {
            return Err(Error::InvalidInput(format!(
                "append batch of {total} bytes is larger than the maximum of {} bytes; split it",
                self.shared.options.max_batch_size
            )));
        }
        Ok(total)
    }
}

/// Takes the log's directory locks: `LOCK` (which older builds take) and the
/// directory itself, so that deleting or replacing `LOCK` lets no second
/// writer in.
pub(crate) fn lock_dir(dir: &Path) -> Result<Vec<File>> {
    let lock_path = dir.join(EmbeddedLog::LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("open {}", lock_path.display()), e))?;
    let dir_handle =
        File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    for (file, what) in [(&dir_handle, dir), (&lock, lock_path.as_path())] {
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    lock: lock_path.clone(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", what.display()), e));
            }
        }
    }
    Ok(vec![dir_handle, lock])
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl EventStore for EmbeddedLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        let bytes = self.check_batch(stream, &events)?;
        let (reply, rx) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.clone(),
            key: stream_key(stream.as_str().as_bytes()),
            expected,
            events,
            bytes,
            reply,
        };
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                dir: self.shared.dir.clone(),
            });
        }
        {
            let tx = self.tx.read().expect("sender lock");
            let tx = tx.as_ref().ok_or(Error::Closed)?;
            tx.send(request).map_err(|_| Error::Closed)?;
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        reader::read_stream(&self.shared, stream, direction, from, limit)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        reader::read_all(&self.shared, from, limit)
    }

    async fn subscribe_all(&self, from: Position) -> Result<Subscription> {
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        Ok(Subscription::new(LogSubscription::new(
            self.shared.clone(),
            from,
        )))
    }

    async fn head(&self) -> Result<Position> {
        Ok(self.shared.index.read().expect("index lock").head)
    }

    async fn first_position(&self) -> Result<Position> {
        Ok(self.archived_before())
    }

    fn write_health(&self) -> std::result::Result<(), String> {
        match self.writer_health() {
            WriterHealth::Failing { reason } => Err(reason),
            _ => Ok(()),
        }
    }
}
