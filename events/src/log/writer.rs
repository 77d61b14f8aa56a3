//! The single writer of the embedded log: group commit (take every waiting
//! append, write them with one `write`, one `fdatasync`, then acknowledge
//! them all) and segment rotation.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::embedded::{Durability, Shared, WriterHealth};
use super::format::{
    self, Chain, FORMAT_VERSION, GROUP_HEADER_LEN, GroupHeader, HEADER_LEN, Placement,
    SegmentHeader,
};
use super::handles::Handles;
use super::index::{Index, SegmentIndex, StreamKey, StreamMap};
use super::io::{LogFile, LogFs, OpenMode};
use super::segidx::SegmentMeta;
use crate::error::{Error, Result};
use crate::ids::{Position, Revision, StreamId, Timestamp};
use crate::store::{AppendResult, EventData, ExpectedRevision};

/// Most bytes one group commit writes before acknowledging.
const MAX_GROUP_BYTES: usize = 32 << 20;
/// How often a buffered log syncs when idle.
const BUFFERED_SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// One append waiting for the writer.
pub(crate) struct AppendRequest {
    pub(crate) stream: StreamId,
    pub(crate) key: StreamKey,
    pub(crate) expected: ExpectedRevision,
    pub(crate) events: Vec<EventData>,
    /// Encoded size of the batch, checked against the limits by the caller.
    pub(crate) bytes: usize,
    pub(crate) reply: oneshot::Sender<Result<AppendResult>>,
}

/// Where the writer resumes after recovery.
pub(crate) struct WriterState {
    /// Handle of the last segment.
    pub(crate) file: Arc<dyn LogFile>,
    /// Its length (everything in it is acknowledged).
    pub(crate) len: u64,
    /// How much of it is known to be on disk (synced).
    pub(crate) synced: u64,
    /// Chain value of the last record.
    pub(crate) chain: Chain,
    /// `recorded_at` of the last record: the next one is never earlier, so
    /// `recorded_at` never decreases along the log even if the clock steps
    /// back.
    pub(crate) recorded_at: Timestamp,
}

impl WriterState {
    /// The state of a writer at the end of a segment that is all on disk.
    pub(crate) fn new(
        file: Arc<dyn LogFile>,
        len: u64,
        chain: Chain,
        recorded_at: Timestamp,
    ) -> Self {
        Self {
            file,
            len,
            synced: len,
            chain,
            recorded_at,
        }
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    state: WriterState,
    buf: Vec<u8>,
    dirty: bool,
    /// A failed write may have left bytes past `state.len`: they must be
    /// cut before anything else is written.
    must_take_back: bool,
    /// Whether the shared health says `Failing` (kept here so a commit does
    /// not take the health lock).
    failing: bool,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, state: WriterState) -> Self {
        Self {
            shared,
            state,
            buf: Vec::with_capacity(1 << 20),
            dirty: false,
            must_take_back: false,
            failing: false,
        }
    }

    /// Serves appends until every sender is gone, then syncs and returns.
    /// A failed write fails its group's appends, not the writer: the next
    /// group tries again.
    pub(crate) fn run(mut self, rx: Receiver<AppendRequest>) {
        let buffered = self.shared.options.durability == Durability::Buffered;
        let mut last_sync = Instant::now();
        loop {
            let first = if buffered {
                match rx.recv_timeout(BUFFERED_SYNC_INTERVAL) {
                    Ok(req) => req,
                    Err(RecvTimeoutError::Timeout) => {
                        self.background_sync();
                        last_sync = Instant::now();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(req) => req,
                    Err(_) => break,
                }
            };
            let mut bytes = first.bytes;
            let mut group = vec![first];
            while bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(req) => {
                        bytes += req.bytes;
                        group.push(req);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
            if buffered && last_sync.elapsed() >= BUFFERED_SYNC_INTERVAL {
                self.background_sync();
                last_sync = Instant::now();
            }
        }
        if let Err(e) = self.sync_if_dirty() {
            tracing::error!(error = %e, "the event log's last sync failed");
        }
    }

    /// A buffered log's periodic sync; a failure is reported and retried.
    pub(crate) fn background_sync(&mut self) {
        match self.sync_if_dirty() {
            Ok(()) => {}
            Err(e) => self.set_failing(&e),
        }
    }

    fn sync_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            self.state
                .file
                .sync_data()
                .map_err(|e| Error::io("fdatasync of the event log", e))?;
            self.dirty = false;
            self.state.synced = self.state.len;
        }
        Ok(())
    }

    /// Records that the writer is failing, once per change of reason.
    fn set_failing(&mut self, e: &Error) {
        self.failing = true;
        let reason = e.to_string();
        let mut health = self.shared.health.lock().expect("health lock");
        if !matches!(&*health, WriterHealth::Failing { reason: r } if *r == reason) {
            tracing::error!(error = %reason, "event log writes are failing; appends are refused until a write succeeds");
            *health = WriterHealth::Failing { reason };
        }
    }

    fn set_ok(&mut self) {
        self.failing = false;
        let mut health = self.shared.health.lock().expect("health lock");
        if *health != WriterHealth::Ok {
            tracing::info!("event log writes succeed again");
            *health = WriterHealth::Ok;
        }
    }

    /// Cuts whatever a failed write left past the acknowledged length, and
    /// syncs, so that a failed append never reappears.
    fn take_back(&mut self) -> Result<()> {
        if self.must_take_back {
            self.state
                .file
                .set_len(self.state.len)
                .and_then(|()| self.state.file.sync_data())
                .map_err(|e| Error::io("take back a failed write to the event log", e))?;
            self.must_take_back = false;
        }
        Ok(())
    }

    /// Gets the writer ready for a group: takes back a failed write and
    /// starts a new segment when the current one is full.
    fn prepare(&mut self) -> Result<()> {
        self.take_back()?;
        if self.state.len >= self.shared.options.segment_size {
            let head = self.shared.index.read().expect("index lock").head;
            self.rotate(head)?;
        }
        Ok(())
    }

    /// Writes every acceptable request of `group` as one group frame with one
    /// write and one sync, then publishes and acknowledges them. When the
    /// write or the sync fails, it takes back what it wrote (cut and synced)
    /// before answering the group with the error.
    pub(crate) fn commit(&mut self, group: Vec<AppendRequest>) {
        if let Err(e) = self.prepare() {
            self.set_failing(&e);
            for req in group {
                let _ = req.reply.send(Err(not_acknowledged(&e)));
            }
            return;
        }
        let now = Timestamp::now().max(self.state.recorded_at);
        self.buf.clear();
        self.buf.resize(GROUP_HEADER_LEN, 0);
        let (staged, first) = {
            let index = self.shared.index.read().expect("index lock");
            let staged = stage_group(
                &mut self.buf,
                &index,
                &self.shared.handles,
                group,
                &self.state,
                now,
            );
            (staged, index.head)
        };
        if staged.accepted.is_empty() {
            return;
        }
        GroupHeader {
            body_len: (self.buf.len() - GROUP_HEADER_LEN) as u32,
            first_position: first,
            count: staged.records.len() as u32,
            synced_end: self.state.synced as u32,
        }
        .encode_into(&mut self.buf);

        let durable = self.shared.options.durability == Durability::Durable;
        if let Err(e) = self.write_buf(durable) {
            self.must_take_back = true;
            let e = match self.take_back() {
                Ok(()) => e,
                Err(again) => again,
            };
            self.set_failing(&e);
            for (reply, _) in staged.accepted {
                let _ = reply.send(Err(not_acknowledged(&e)));
            }
            return;
        }
        self.dirty = !durable;
        self.state.len += self.buf.len() as u64;
        if durable {
            self.state.synced = self.state.len;
        }
        self.state.chain = staged.chain;
        self.state.recorded_at = now;

        self.publish(staged.records, staged.next);
        for (reply, result) in staged.accepted {
            let _ = reply.send(Ok(result));
        }
        if self.failing {
            self.set_ok();
        }
        if self.state.len >= self.shared.options.segment_size
            && let Err(e) = self.rotate(staged.next)
        {
            // Tried again before the next group.
            self.set_failing(&e);
        }
    }

    /// Writes the encoded group with one `write` and, when `durable`, one
    /// `fdatasync`.
    #[inline]
    fn write_buf(&mut self, durable: bool) -> Result<()> {
        self.state
            .file
            .write_all_at(&self.buf, self.state.len)
            .map_err(|e| Error::io("write to the event log", e))?;
        if durable {
            self.state
                .file
                .sync_data()
                .map_err(|e| Error::io("fdatasync of the event log", e))?;
        }
        Ok(())
    }

    /// Makes the written `records` readable: adds them to the index, moves
    /// the last segment's end to the writer's length and the head to `next`.
    #[inline]
    fn publish(&self, records: Vec<(StreamKey, Revision, u32)>, next: Position) {
        {
            let mut index = self.shared.index.write().expect("index lock");
            for (key, revision, offset) in records {
                index.push(key, revision, offset);
            }
            index.segments.last_mut().expect("a segment").end = self.state.len;
            debug_assert_eq!(index.head, next);
        }
        self.shared.head_tx.send_replace(next);
    }

    /// Seals the current segment and starts a new one at `first`; the
    /// sealed segment's index file is written in the background.
    fn rotate(&mut self, first: Position) -> Result<()> {
        self.sync_if_dirty()?;
        let (file, path) = create_segment(
            self.shared.fs.as_ref(),
            &self.shared.dir,
            first,
            &self.state.chain,
        )?;
        let sealed = {
            let mut index = self.shared.index.write().expect("index lock");
            let last = index.segments.last_mut().expect("a segment");
            let sealed = last.freeze().map(|body| {
                let meta = SegmentMeta {
                    segment_version: last.version,
                    first: last.first,
                    count: body.offsets.len() as u64,
                    segment_len: last.end,
                    last_chain: self.state.chain,
                    max_recorded_at: self.state.recorded_at,
                };
                (last.path.clone(), body, meta)
            });
            index
                .segments
                .push(SegmentIndex::new(first, path, FORMAT_VERSION));
            sealed
        };
        if let Some((segment, body, meta)) = sealed {
            super::embedded::index_in_background(&self.shared, segment, body, meta);
        }
        self.state = WriterState::new(
            file,
            HEADER_LEN as u64,
            self.state.chain,
            self.state.recorded_at,
        );
        Ok(())
    }
}

/// The error an append gets when its group could not be written.
fn not_acknowledged(e: &Error) -> Error {
    Error::io(
        "append not acknowledged (nothing of it was kept)",
        std::io::Error::other(e.to_string()),
    )
}

/// A group encoded into the writer's buffer, not yet written.
struct Staged {
    /// The reply and result of each accepted request.
    accepted: Vec<(oneshot::Sender<Result<AppendResult>>, AppendResult)>,
    /// (stream, revision, offset) of each record, in position order.
    records: Vec<(StreamKey, Revision, u32)>,
    /// The position after the last record.
    next: Position,
    /// Chain value of the last record.
    chain: Chain,
}

/// Checks each request of `group` against its stream's revision (as the
/// requests accepted before it leave it) and encodes the accepted ones into
/// `buf`, from the head of `index` on. Refused requests are answered here.
fn stage_group(
    buf: &mut Vec<u8>,
    index: &Index,
    handles: &Handles,
    group: Vec<AppendRequest>,
    state: &WriterState,
    now: Timestamp,
) -> Staged {
    let mut staged = Staged {
        accepted: Vec::with_capacity(group.len()),
        records: Vec::new(),
        next: index.head,
        chain: state.chain,
    };
    let mut overlay: StreamMap<Revision> = StreamMap::default();
    for req in group {
        let actual = match overlay.get(&req.key) {
            Some(&r) => Some(r),
            None => match index.last_revision(handles, req.key) {
                Ok(r) => r,
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                    continue;
                }
            },
        };
        if !req.expected.accepts(actual) {
            let _ = req.reply.send(Err(Error::WrongExpectedVersion {
                stream: req.stream,
                expected: req.expected,
                actual,
            }));
            continue;
        }
        let first_revision = actual.map_or(Revision::FIRST, Revision::next);
        let first_position = staged.next;
        let last_revision = staged.encode_batch(buf, &req, first_revision, state.len, now);
        overlay.insert(req.key, last_revision);
        staged.accepted.push((
            req.reply,
            AppendResult {
                next_expected: last_revision,
                first_position,
                last_position: Position(staged.next.0 - 1),
            },
        ));
    }
    staged
}

impl Staged {
    /// Encodes the events of `req` into `buf` as one append batch, the first
    /// at `revision`, in a segment `seg_len` bytes long before `buf`.
    /// Returns the revision of the last.
    #[inline]
    fn encode_batch(
        &mut self,
        buf: &mut Vec<u8>,
        req: &AppendRequest,
        mut revision: Revision,
        seg_len: u64,
        now: Timestamp,
    ) -> Revision {
        let mut next = self.next;
        let mut chain = self.chain;
        let last = req.events.len() - 1;
        for (i, event) in req.events.iter().enumerate() {
            self.records
                .push((req.key, revision, (seg_len + buf.len() as u64) as u32));
            chain = format::encode_record(
                buf,
                event,
                &req.stream,
                Placement {
                    position: next,
                    revision,
                    recorded_at: now,
                    batch_end: i == last,
                },
                &chain,
            );
            next = next.next();
            revision = revision.next();
        }
        self.next = next;
        self.chain = chain;
        Revision(revision.0 - 1)
    }
}

/// Creates the segment starting at `first` atomically (written and synced as
/// a `.tmp` file, then renamed, then the directory synced). Returns its
/// handle (reads and writes) and its path.
pub(crate) fn create_segment(
    fs: &dyn LogFs,
    dir: &Path,
    first: Position,
    chain_seed: &Chain,
) -> Result<(Arc<dyn LogFile>, Arc<Path>)> {
    let name = format::segment_file_name(first);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let header = SegmentHeader {
        first_position: first,
        chain_seed: *chain_seed,
        version: FORMAT_VERSION,
    };
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let f = fs
        .open(&tmp, OpenMode::Create)
        .map_err(|e| Error::io(ctx("create", &tmp), e))?;
    f.write_all_at(&header.encode(), 0)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(ctx("write", &tmp), e))?;
    fs.rename(&tmp, &path)
        .map_err(|e| Error::io(ctx("rename", &tmp), e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))?;
    Ok((f, path.into()))
}
