//! The single writer of the embedded log: group commit (take every waiting
//! append, write them with one `write`, one `fdatasync`, then acknowledge
//! them all) and segment rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::embedded::{Durability, Shared};
use super::format::{self, Chain, HEADER_LEN, Placement, SegmentHeader};
use super::index::{Index, SegmentIndex, StreamKey, StreamMap};
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
    /// Append handle of the last segment.
    pub(crate) file: File,
    /// Its length (everything in it is acknowledged).
    pub(crate) len: u64,
    /// Chain value of the last record.
    pub(crate) chain: Chain,
    /// `recorded_at` of the last record: the next one is never earlier, so
    /// `recorded_at` never decreases along the log even if the clock steps
    /// back.
    pub(crate) recorded_at: Timestamp,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    state: WriterState,
    buf: Vec<u8>,
    dirty: bool,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, state: WriterState) -> Self {
        Self {
            shared,
            state,
            buf: Vec::with_capacity(1 << 20),
            dirty: false,
        }
    }

    /// Serves appends until every sender is gone, then syncs and returns.
    pub(crate) fn run(mut self, rx: Receiver<AppendRequest>) {
        let buffered = self.shared.options.durability == Durability::Buffered;
        let mut last_sync = Instant::now();
        loop {
            let first = if buffered {
                match rx.recv_timeout(BUFFERED_SYNC_INTERVAL) {
                    Ok(req) => req,
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = self.sync_if_dirty() {
                            self.poison(&e);
                            return;
                        }
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
            if let Err(e) = self.commit(group) {
                self.poison(&e);
                return;
            }
            if buffered && last_sync.elapsed() >= BUFFERED_SYNC_INTERVAL {
                if let Err(e) = self.sync_if_dirty() {
                    self.poison(&e);
                    return;
                }
                last_sync = Instant::now();
            }
        }
        if let Err(e) = self.sync_if_dirty() {
            self.poison(&e);
        }
    }

    fn poison(&self, e: &Error) {
        tracing::error!(error = %e, "event log writer stopped; reopen the log to recover");
        self.shared.mark_closed();
    }

    fn sync_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            self.state
                .file
                .sync_data()
                .map_err(|e| Error::io("fdatasync of the event log", e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Writes every acceptable request of `group` with one write and one
    /// sync, then publishes and acknowledges them. An `Err` means the log can
    /// no longer be trusted: every request of the group has been answered.
    fn commit(&mut self, group: Vec<AppendRequest>) -> Result<()> {
        let now = Timestamp::now().max(self.state.recorded_at);
        self.buf.clear();
        let staged = {
            let index = self.shared.index.read().expect("index lock");
            stage_group(&mut self.buf, &index, group, &self.state, now)
        };
        if staged.accepted.is_empty() {
            return Ok(());
        }

        let durable = self.shared.options.durability == Durability::Durable;
        if let Err(e) = self.write_buf(durable) {
            for (reply, _) in staged.accepted {
                let _ = reply.send(Err(Error::io(
                    "append not acknowledged",
                    std::io::Error::other(e.to_string()),
                )));
            }
            return Err(e);
        }
        self.dirty = !durable;
        self.state.len += self.buf.len() as u64;
        self.state.chain = staged.chain;
        self.state.recorded_at = now;

        self.publish(staged.records, staged.next);
        for (reply, result) in staged.accepted {
            let _ = reply.send(Ok(result));
        }

        if self.state.len >= self.shared.options.segment_size {
            self.rotate(staged.next)?;
        }
        Ok(())
    }

    /// Writes the encoded group with one `write` and, when `durable`, one
    /// `fdatasync`.
    #[inline]
    fn write_buf(&mut self, durable: bool) -> Result<()> {
        self.state
            .file
            .write_all(&self.buf)
            .map_err(|e| Error::io("write to the event log", e))
            .and_then(|()| {
                if durable {
                    self.state
                        .file
                        .sync_data()
                        .map_err(|e| Error::io("fdatasync of the event log", e))
                } else {
                    Ok(())
                }
            })
    }

    /// Makes the written `records` readable: adds them to the index, moves
    /// the last segment's end to the writer's length and the head to `next`.
    #[inline]
    fn publish(&self, records: Vec<(StreamKey, u32)>, next: Position) {
        {
            let mut index = self.shared.index.write().expect("index lock");
            for (key, offset) in records {
                index.push(key, offset);
            }
            index.segments.last_mut().expect("a segment").end = self.state.len;
            debug_assert_eq!(index.head, next);
        }
        self.shared.head_tx.send_replace(next);
    }

    /// Seals the current segment and starts a new one at `first`.
    fn rotate(&mut self, first: Position) -> Result<()> {
        self.sync_if_dirty()?;
        let (file, read, path) = create_segment(&self.shared.dir, first, &self.state.chain)?;
        {
            let mut index = self.shared.index.write().expect("index lock");
            index.segments.push(SegmentIndex {
                first,
                path,
                file: Arc::new(read),
                offsets: Vec::new(),
                end: HEADER_LEN as u64,
            });
        }
        self.state.file = file;
        self.state.len = HEADER_LEN as u64;
        Ok(())
    }
}

/// A group encoded into the writer's buffer, not yet written.
struct Staged {
    /// The reply and result of each accepted request.
    accepted: Vec<(oneshot::Sender<Result<AppendResult>>, AppendResult)>,
    /// (stream, offset) of each record, in position order.
    records: Vec<(StreamKey, u32)>,
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
        let actual = overlay
            .get(&req.key)
            .copied()
            .or_else(|| index.last_revision(req.key));
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
                .push((req.key, (seg_len + buf.len() as u64) as u32));
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
/// append handle, a read handle and its path.
pub(crate) fn create_segment(
    dir: &Path,
    first: Position,
    chain_seed: &Chain,
) -> Result<(File, File, Arc<Path>)> {
    let name = format::segment_file_name(first);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let header = SegmentHeader {
        first_position: first,
        chain_seed: *chain_seed,
    };
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let mut f = File::create(&tmp).map_err(|e| Error::io(ctx("create", &tmp), e))?;
    f.write_all(&header.encode())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(ctx("write", &tmp), e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(ctx("rename", &tmp), e))?;
    sync_dir(dir)?;
    let append = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(ctx("open", &path), e))?;
    let read = File::open(&path).map_err(|e| Error::io(ctx("open", &path), e))?;
    Ok((append, read, path.into()))
}

/// Makes a directory's entries (created, renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))
}
