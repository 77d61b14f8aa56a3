//! Opening the embedded log: find the segments, check every record, rebuild
//! the index, cut a torn tail (keeping its bytes in a quarantine file), and
//! refuse to open on corruption.
//!
//! In a version 3 segment recovery reads group by group. A group that fails
//! its checks is a torn write only if it is in the last segment and no later
//! group says the bytes at its offset had been synced (a group commit writes
//! and syncs one group before the next): the log is then cut back to the
//! group's start. Anything else is [`Error::Corruption`] naming the segment
//! file and byte offset. Version 2 segments keep their rules: a bad record is
//! a torn tail only in the last segment and with no valid record after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    self, Chain, FORMAT_VERSION, FORMAT_VERSION_UNGROUPED, FRAME_LEN, FrameError, GROUP_HEADER_LEN,
    GroupHeader, HEADER_LEN, MAX_BODY_LEN, MIN_BODY_LEN, RecordView, SegmentHeader,
};
use super::handles::{Handles, MAX_OPEN};
use super::index::{Archive, Body, Index, SegmentIndex, StreamKey, stream_key};
use super::io::{LogFile, LogFs, OpenMode};
use super::manifest::{self, Manifest};
use super::segidx::{self, SealedIndex, SegmentMeta};
use super::writer::{self, WriterState};
use crate::error::{Error, Result};
use crate::ids::{Position, Revision, Timestamp};

/// Bytes read from a segment at a time while scanning.
const CHUNK: usize = 8 << 20;
/// Bytes copied at a time into a quarantine file.
const COPY_CHUNK: usize = 1 << 20;

/// What opening found.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    /// Where the writer resumes; `None` when opened read-only.
    pub(crate) writer: Option<WriterState>,
    /// The torn tail found (and, with write access, cut), if any.
    pub(crate) torn: Option<TornTail>,
}

/// A torn write at the end of the log: the bytes of an append that was never
/// acknowledged (or, indistinguishably, damage to the last group). A writer
/// cuts it and keeps its bytes in `quarantine`; a reader leaves it unread.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the torn bytes start.
    pub offset: u64,
    /// How many bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// What check the first torn bytes failed.
    pub reason: String,
    /// The file holding the cut bytes, when they were cut.
    pub quarantine: Option<PathBuf>,
}

/// How a log is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// By the process holding the lock: cuts a torn tail, resumes writing.
    Write,
    /// Beside a writer: changes nothing on disk and stops at the first
    /// incomplete batch (the writer's append in progress).
    ReadOnly,
    /// As `ReadOnly`, but checks every record of every segment, trusting no
    /// index file (`neonhub log repair` looking for damage).
    Scan,
}

/// The segment files of `dir`, sorted by first position. With write access,
/// removes leftover `.tmp` files of an interrupted segment creation.
pub(crate) fn list_segments(
    fs: &dyn LogFs,
    dir: &Path,
    access: Access,
) -> Result<Vec<(Position, PathBuf)>> {
    let names = fs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if name.starts_with("seg-") && (name.ends_with(".log.tmp") || name.ends_with(".idx.tmp")) {
            if access != Access::Write {
                continue;
            }
            tracing::warn!(file = %path.display(), "removing an unfinished segment or index file");
            fs.remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            continue;
        }
        match format::parse_segment_file_name(&name) {
            None => {}
            Some(None) => {
                return Err(Error::BadSegment {
                    path,
                    reason: "named like a segment but the name is not seg-<20 digits>.log"
                        .to_string(),
                });
            }
            Some(Some(first)) => segments.push((first, path)),
        }
    }
    segments.sort();
    Ok(segments)
}

/// Scans every segment of `dir` and returns the index and the writer state.
///
/// When segments were archived (`log::archive`), the log starts where the
/// archive manifest says they end, with their last chain value: the first
/// live segment must start there and continue that chain.
pub(crate) fn recover(fs: &Arc<dyn LogFs>, dir: &Path, access: Access) -> Result<Recovered> {
    let mut segments = list_segments(fs.as_ref(), dir, access)?;
    let mut index = Index {
        archive: load_archive(fs.as_ref(), dir)?,
        ..Index::default()
    };
    index.head = index.archive.end();
    let mut chain = index.archive.manifest.last_chain();
    let mut recorded_at = index.archive.manifest.max_recorded_at();
    // Segments an interrupted archive run recorded as archived but did not
    // remove yet: no longer part of the live log (the next run removes them).
    segments.retain(|(first, _)| *first >= index.head);
    if segments.is_empty() && access != Access::Write {
        return Err(Error::NotALog {
            dir: dir.to_path_buf(),
        });
    }
    if segments.is_empty() {
        let first = index.head;
        let (file, path) = writer::create_segment(fs.as_ref(), dir, first, &chain)?;
        index
            .segments
            .push(SegmentIndex::new(first, path, FORMAT_VERSION));
        return Ok(Recovered {
            index,
            writer: Some(WriterState::new(
                file,
                HEADER_LEN as u64,
                chain,
                recorded_at,
            )),
            torn: None,
        });
    }
    let count = segments.len();
    let handles = Handles::new(fs.clone(), MAX_OPEN);
    let mut torn = None;
    let mut progress = RebuildProgress::default();
    for i in 0..count {
        let (first, path) = &segments[i];
        let path: Arc<Path> = path.as_path().into();
        let is_last = i + 1 == count;
        if !is_last
            && access != Access::Scan
            && open_sealed(
                fs.as_ref(),
                &path,
                *first,
                &segments[i + 1].1,
                &mut index,
                &mut chain,
                &mut recorded_at,
            )?
        {
            continue;
        }
        let tail = Tail {
            chain: &mut chain,
            recorded_at: &mut recorded_at,
        };
        if !is_last {
            tracing::info!(
                segment = %path.display(),
                progress = format!("{} of {count} segments", i + 1),
                "indexing a sealed segment from its records (its index file is missing or does not check out)"
            );
            progress.rebuilding(i, count);
        }
        torn = scan_segment(
            fs, &handles, dir, &path, *first, &mut index, tail, is_last, access,
        )?;
        if !is_last {
            seal_scanned(fs.as_ref(), &mut index, &chain, recorded_at, access);
        }
    }
    progress.finish();
    if access != Access::Write {
        return Ok(Recovered {
            index,
            writer: None,
            torn,
        });
    }
    let last = index.segments.last().expect("at least one segment");
    if last.version == FORMAT_VERSION_UNGROUPED {
        // A log written by an older build: keep its segments as they are
        // and write on in a new segment of this build's format.
        let first = index.head;
        if last.count() == 0 {
            // An empty old segment is replaced (same name, same position).
            index.segments.pop();
        }
        let (file, path) = writer::create_segment(fs.as_ref(), dir, first, &chain)?;
        if index.segments.last().is_some_and(|s| s.count() > 0) {
            // The old segment is sealed now: it gets its index file.
            seal_scanned(fs.as_ref(), &mut index, &chain, recorded_at, access);
        }
        index
            .segments
            .push(SegmentIndex::new(first, path, FORMAT_VERSION));
        drop(file);
    }
    let last = index.segments.last().expect("at least one segment");
    let path = last.path.clone();
    let len = last.end;
    let file = fs
        .open(&path, OpenMode::Write)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    Ok(Recovered {
        index,
        writer: Some(WriterState::new(file, len, chain, recorded_at)),
        torn,
    })
}

/// Reads the live archive manifest of `dir`, if any, and the index files of
/// the segments it lists (kept in `dir`; one that is missing or does not
/// match the manifest is left out, with a warning: streams begun in its
/// segment then look new to appends and reads).
pub(crate) fn load_archive(fs: &dyn LogFs, dir: &Path) -> Result<Archive> {
    let path = dir.join(manifest::LIVE_MANIFEST);
    let Some(manifest) = Manifest::read(fs, &path, true)? else {
        return Ok(Archive::default());
    };
    let indexes = manifest
        .segments
        .iter()
        .map(|s| {
            let segment: Arc<Path> = dir.join(format::segment_file_name(Position(s.first))).into();
            let expect = segidx::Expected {
                first: Position(s.first),
                segment_version: s.segment_version,
                segment_len: s.segment_len,
                next: None,
            };
            match SealedIndex::load(fs, &segment, &expect) {
                Ok(Some(mut sealed))
                    if sealed.meta.count == s.count && sealed.meta.last_chain == s.last_chain =>
                {
                    sealed.archived = true;
                    Some(Arc::new(sealed))
                }
                other => {
                    tracing::warn!(
                        file = %segidx::index_path(&segment).display(),
                        problem = match other {
                            Ok(None) => "missing".to_string(),
                            Err(reason) => reason,
                            Ok(Some(_)) => "does not match the archive manifest".to_string(),
                        },
                        "the index file of an archived segment is not usable; its streams are not known to this log"
                    );
                    None
                }
            }
        })
        .collect();
    Ok(Archive { manifest, indexes })
}

/// A progress bar on a terminal's stderr while sealed segments are indexed
/// from their records (their index files missing or damaged: on a long log,
/// minutes), made at the first such segment; nothing on a normal open, and
/// nothing when stderr is not a terminal (the log lines above say it).
#[derive(Default)]
struct RebuildProgress(Option<indicatif::ProgressBar>);

impl RebuildProgress {
    /// Segment `i` of `count` (the last one, always read, not counted) is
    /// being indexed.
    fn rebuilding(&mut self, i: usize, count: usize) {
        use std::io::IsTerminal;
        let bar = self.0.get_or_insert_with(|| {
            let sealed = count.saturating_sub(1) as u64;
            let draw = if std::io::stderr().is_terminal() {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::hidden()
            };
            let bar = indicatif::ProgressBar::with_draw_target(Some(sealed), draw);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "indexing sealed segments {bar:30} {pos}/{len}, ETA {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(i as u64);
    }

    fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Opens the sealed segment at `path` by its index file, checking the
/// segment's header (it continues the log) and the index file against the
/// segment and against `next`'s header (the index's record count and last
/// chain value must be where and what the next segment starts from).
/// Returns `false`, changing nothing, when the index file is missing or
/// does not check out: the segment is then scanned.
fn open_sealed(
    fs: &dyn LogFs,
    path: &Arc<Path>,
    first: Position,
    next: &Path,
    index: &mut Index,
    chain: &mut Chain,
    recorded_at: &mut Timestamp,
) -> Result<bool> {
    let file = fs.open(path, OpenMode::Read).map_err(io(path, "open"))?;
    let len = file.len().map_err(io(path, "stat"))?;
    let version = check_header(path, file.as_ref(), len, first, index.head, chain)?;
    drop(file);
    let next_header = {
        let f = fs.open(next, OpenMode::Read).map_err(io(next, "open"))?;
        let mut h = vec![0u8; HEADER_LEN];
        match f.read_exact_at(&mut h, 0) {
            Ok(()) => SegmentHeader::decode(&h).ok(),
            Err(_) => None,
        }
    };
    let expect = segidx::Expected {
        first,
        segment_version: version,
        segment_len: len,
        next: next_header.map(|h| (h.first_position, h.chain_seed)),
    };
    let sealed = match SealedIndex::load(fs, path, &expect) {
        Ok(Some(sealed)) if expect.next.is_some() => sealed,
        Ok(_) => return Ok(false),
        Err(reason) => {
            tracing::warn!(
                file = %segidx::index_path(path).display(),
                reason,
                "a segment's index file does not check out; rebuilding it from the segment"
            );
            return Ok(false);
        }
    };
    index.head = Position(first.0 + sealed.meta.count);
    *chain = sealed.meta.last_chain;
    *recorded_at = (*recorded_at).max(sealed.meta.max_recorded_at);
    index
        .segments
        .push(SegmentIndex::sealed(path.clone(), sealed));
    Ok(true)
}

/// The sealed segment just scanned (the last of `index`) ends with `chain`:
/// freezes its in-memory index and, with write access, writes its index
/// file and swaps it in. A file that cannot be written leaves the segment
/// indexed in memory.
fn seal_scanned(
    fs: &dyn LogFs,
    index: &mut Index,
    chain: &Chain,
    recorded_at: Timestamp,
    access: Access,
) {
    let seg = index.segments.last_mut().expect("just scanned");
    let Some(body) = seg.freeze() else {
        return;
    };
    if access != Access::Write {
        return;
    }
    let meta = SegmentMeta {
        segment_version: seg.version,
        first: seg.first,
        count: body.offsets.len() as u64,
        segment_len: seg.end,
        last_chain: *chain,
        max_recorded_at: recorded_at,
    };
    match segidx::write_and_load(fs, &seg.path, &body, &meta) {
        Ok(sealed) => seg.body = Body::Sealed(Arc::new(sealed)),
        Err(e) => tracing::warn!(
            segment = %seg.path.display(),
            error = %e,
            "could not write a segment's index file, or it does not read back; it stays indexed in memory"
        ),
    }
}

/// Reads a file in large chunks, keeping a window of it in memory.
pub(crate) struct Window {
    file: Arc<dyn LogFile>,
    pub(crate) len: u64,
    /// Reused from chunk to chunk: a fresh buffer per chunk had the kernel
    /// fault in and zero a few MiB of new pages each time (7 % of `audit
    /// verify`'s time, in `clear_page`).
    buf: Vec<u8>,
    /// How much of `buf` the last read filled.
    filled: usize,
    start: u64,
}

impl Window {
    pub(crate) fn new(file: Arc<dyn LogFile>, len: u64) -> Self {
        Self {
            file,
            len,
            buf: Vec::new(),
            filled: 0,
            start: 0,
        }
    }

    /// The bytes from `offset` to the end of the window, holding at least
    /// `want` bytes unless the file ends first.
    pub(crate) fn at(&mut self, offset: u64, want: usize) -> std::io::Result<&[u8]> {
        let have_end = self.start + self.filled as u64;
        let want_end = (offset + want as u64).min(self.len);
        if offset < self.start || want_end > have_end {
            let size = (want.max(CHUNK) as u64).min(self.len.saturating_sub(offset)) as usize;
            if self.buf.len() < size {
                self.buf.resize(size, 0);
            }
            // Nothing of the last chunk stays readable if this read fails.
            self.filled = 0;
            self.file.read_exact_at(&mut self.buf[..size], offset)?;
            self.filled = size;
            self.start = offset;
        }
        Ok(&self.buf[(offset - self.start) as usize..self.filled])
    }
}

/// What the last complete batch leaves for the writer to continue from.
struct Tail<'a> {
    chain: &'a mut Chain,
    recorded_at: &'a mut Timestamp,
}

/// One record of an append batch whose end has not been seen yet.
struct Pending {
    key: StreamKey,
    revision: Revision,
    offset: u32,
}

/// Checks one segment and adds its records to `index`; cuts a torn tail
/// (only ever in the last segment) when opened for writing, keeping the cut
/// bytes in a quarantine file beside the segment.
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    fs: &Arc<dyn LogFs>,
    handles: &Handles,
    dir: &Path,
    path: &Path,
    first: Position,
    index: &mut Index,
    mut tail: Tail<'_>,
    is_last: bool,
    access: Access,
) -> Result<Option<TornTail>> {
    let (file, len, version) = open_segment(fs.as_ref(), path, first, index, tail.chain)?;
    let mut window = Window::new(file, len);
    let (bad_at, reason) = if version == FORMAT_VERSION_UNGROUPED {
        let scanned = scan_records(path, &mut window, handles, index, &mut tail)?;
        let good_end = index.segments.last().expect("pushed above").end;
        if good_end == len {
            return Ok(None);
        }
        // Records from `good_end` on are not complete batches: either
        // scanning stopped at a bad record, or the file ends inside a batch.
        let (bad_at, reason) = scanned
            .stop
            .unwrap_or((scanned.offset, "unfinished append batch".to_string()));
        check_torn_tail(
            path,
            &mut window,
            bad_at,
            reason.clone(),
            is_last,
            index.head,
        )?;
        (good_end, reason)
    } else {
        let Some((bad_at, reason)) = scan_groups(path, &mut window, handles, index, &mut tail)?
        else {
            return Ok(None);
        };
        check_torn_group(path, &mut window, bad_at, &reason, is_last, index.head)?;
        (bad_at, reason)
    };
    let mut torn = TornTail {
        segment: path.to_path_buf(),
        offset: bad_at,
        bytes: len - bad_at,
        reason,
        quarantine: None,
    };
    if access == Access::Write {
        torn.quarantine = Some(cut(fs.as_ref(), dir, path, bad_at, len, &torn.reason)?);
    }
    Ok(Some(torn))
}

/// Maps an I/O error on the segment at `path` to [`Error::Io`] saying what
/// failed. Formats the message only on error: this sits on the per-record
/// path.
#[inline]
fn io<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |e| Error::io(format!("{what} {}", path.display()), e)
}

/// [`Error::Corruption`] at `offset` of the segment at `path`.
fn corruption(path: &Path, offset: u64, reason: String) -> Error {
    Error::Corruption {
        segment: path.to_path_buf(),
        offset,
        reason,
    }
}

/// Opens the segment at `path`, checks its header (see [`check_header`]) and
/// adds its entry, with no records yet, to `index`. Returns the file, for
/// scanning, its length and its format version.
fn open_segment(
    fs: &dyn LogFs,
    path: &Path,
    first: Position,
    index: &mut Index,
    chain: &Chain,
) -> Result<(Arc<dyn LogFile>, u64, u32)> {
    let file = fs.open(path, OpenMode::Read).map_err(io(path, "open"))?;
    let len = file.len().map_err(io(path, "stat"))?;
    let version = check_header(path, file.as_ref(), len, first, index.head, chain)?;
    index
        .segments
        .push(SegmentIndex::new(first, path.into(), version));
    Ok((file, len, version))
}

/// Reads the header of the segment at `path` (`len` bytes long) and checks
/// that the segment continues the log: it starts at `first` (the position its
/// name says), which is `head` (where the log before it ends), and its chain
/// seed is `chain` (the chain value of the log before it).
fn check_header(
    path: &Path,
    file: &dyn LogFile,
    len: u64,
    first: Position,
    head: Position,
    chain: &Chain,
) -> Result<u32> {
    let mut header = vec![0u8; HEADER_LEN.min(len as usize)];
    file.read_exact_at(&mut header, 0)
        .map_err(io(path, "read"))?;
    let header = SegmentHeader::decode(&header).map_err(|reason| Error::BadSegment {
        path: path.to_path_buf(),
        reason,
    })?;
    if header.first_position != first {
        return Err(Error::BadSegment {
            path: path.to_path_buf(),
            reason: format!(
                "its name says it starts at position {first} but its header says {}",
                header.first_position
            ),
        });
    }
    if first != head {
        return Err(corruption(
            path,
            0,
            format!(
                "segment starts at position {first} but the log before it ends at {head} (a segment is missing or duplicated, or segments were archived and the archive manifest {} that records them is missing)",
                path.with_file_name(manifest::LIVE_MANIFEST).display()
            ),
        ));
    }
    if header.chain_seed != *chain {
        return Err(Error::ChainBroken {
            position: first,
            segment: path.to_path_buf(),
            offset: 0,
        });
    }
    Ok(header.version)
}

/// Where scanning a segment's records stopped.
struct Scanned {
    /// The offset after the last record read.
    offset: u64,
    /// The first record that failed its frame checks, and why.
    stop: Option<(u64, String)>,
}

/// Reads the records of a segment from its header on, adding every complete
/// append batch to `index` and `tail`. Stops at the end of the file or at the
/// first record that is incomplete or damaged; a record that is intact but
/// does not continue the log is [`Error::Corruption`].
fn scan_records(
    path: &Path,
    window: &mut Window,
    handles: &Handles,
    index: &mut Index,
    tail: &mut Tail<'_>,
) -> Result<Scanned> {
    let mut offset = HEADER_LEN as u64;
    let mut batch = Batch {
        pending: Vec::new(),
        chain: *tail.chain,
        recorded_at: *tail.recorded_at,
    };
    while offset < window.len {
        let record = match read_record(path, window, offset)? {
            Frame::Record(record) => record,
            Frame::Bad(reason) => {
                return Ok(Scanned {
                    offset,
                    stop: Some((offset, reason)),
                });
            }
        };
        let key = check_record(path, offset, &record, handles, index, &batch.pending)?;
        batch.add(key, offset, &record);
        offset += record.frame_len as u64;
        if record.is_batch_end() {
            batch.finish(index, offset, tail);
        }
    }
    Ok(Scanned { offset, stop: None })
}

/// What [`read_record`] found at an offset.
enum Frame<'w> {
    /// A record whose frame is intact.
    Record(RecordView<'w>),
    /// An incomplete or damaged frame, and why.
    Bad(String),
}

/// Reads the frame at `offset` and checks it (length, CRC, layout).
#[inline]
fn read_record<'w>(path: &Path, window: &'w mut Window, offset: u64) -> Result<Frame<'w>> {
    let bytes = window.at(offset, FRAME_LEN).map_err(io(path, "read"))?;
    let want = format::peek_body_len(bytes).map_or(FRAME_LEN, |b| FRAME_LEN + b);
    let bytes = window
        .at(offset, want.min(FRAME_LEN + MAX_BODY_LEN))
        .map_err(io(path, "read"))?;
    Ok(match format::decode_record(bytes, MAX_BODY_LEN) {
        Ok(record) => Frame::Record(record),
        Err(FrameError::Incomplete) => Frame::Bad("incomplete record".to_string()),
        Err(FrameError::Damaged(reason)) => Frame::Bad(reason),
    })
}

/// Checks that the intact `record` at `offset` continues the log after the
/// `pending` records of its batch: it has the next position, the stream of
/// the rest of its batch, and that stream's next revision. Returns its
/// stream.
#[inline]
fn check_record(
    path: &Path,
    offset: u64,
    record: &RecordView<'_>,
    handles: &Handles,
    index: &Index,
    pending: &[Pending],
) -> Result<StreamKey> {
    let key = stream_key(record.stream);
    check_continuity(
        path,
        offset,
        record.position,
        record.revision,
        key,
        (handles, index),
        pending,
    )?;
    Ok(key)
}

/// Checks that a record at `offset` with `position`, `revision` and stream
/// `key` continues the log after the `pending` records of its batch.
///
/// A stream's revisions are checked against its events in the same segment
/// and, when it claims to continue a stream that has none there, against
/// the older segments' indexes. A first event claiming revision 0 is not
/// looked up in older segments (that would cost a lookup per new stream on
/// every open): `audit verify` checks that every stream starts once.
#[inline]
fn check_continuity(
    path: &Path,
    offset: u64,
    position: Position,
    revision: Revision,
    key: StreamKey,
    (handles, index): (&Handles, &Index),
    pending: &[Pending],
) -> Result<()> {
    let expected_position = Position(index.head.0 + pending.len() as u64);
    if position != expected_position {
        return Err(corruption(
            path,
            offset,
            format!("record has position {position} where {expected_position} was expected",),
        ));
    }
    if pending.first().is_some_and(|p| p.key != key) {
        return Err(corruption(
            path,
            offset,
            "an append batch mixes streams".to_string(),
        ));
    }
    let base = match index.last_revision_in_last(key) {
        Some(r) => r.0 + 1,
        None if revision.0 == pending.len() as u64 => 0,
        None => index.last_revision(handles, key)?.map_or(0, |r| r.0 + 1),
    };
    let expected_revision = Revision(base + pending.len() as u64);
    if revision != expected_revision {
        return Err(corruption(
            path,
            offset,
            format!("record has stream revision {revision} where {expected_revision} was expected"),
        ));
    }
    Ok(())
}

/// The append batch being read: its records reach the index only once its
/// last record has been seen.
struct Batch {
    pending: Vec<Pending>,
    /// Chain value of its last record read so far.
    chain: Chain,
    /// Latest `recorded_at` so far.
    recorded_at: Timestamp,
}

impl Batch {
    /// Adds the checked `record` at `offset`, of stream `key`.
    #[inline]
    fn add(&mut self, key: StreamKey, offset: u64, record: &RecordView<'_>) {
        // The chain itself is checked by `verify` (it costs a hash per
        // record); opening only carries the last value forward.
        self.chain = record.chain();
        self.recorded_at = self.recorded_at.max(record.recorded_at);
        self.pending.push(Pending {
            key,
            revision: record.revision,
            offset: offset as u32,
        });
    }

    /// The batch is complete and ends at `end`: adds its records to `index`
    /// and carries its chain value and time to `tail`.
    #[inline]
    fn finish(&mut self, index: &mut Index, end: u64, tail: &mut Tail<'_>) {
        for p in self.pending.drain(..) {
            index.push(p.key, p.revision, p.offset);
        }
        index.segments.last_mut().expect("pushed above").end = end;
        *tail.chain = self.chain;
        *tail.recorded_at = self.recorded_at;
    }
}

/// Decides what the records from `bad_at` on (failing for `reason`) are: a
/// torn tail only in the last segment and with no valid record after it;
/// otherwise [`Error::Corruption`].
fn check_torn_tail(
    path: &Path,
    window: &mut Window,
    bad_at: u64,
    reason: String,
    is_last: bool,
    head: Position,
) -> Result<()> {
    if !is_last {
        return Err(corruption(
            path,
            bad_at,
            format!("{reason} in a sealed segment"),
        ));
    }
    if let Some(valid_at) = find_valid_record(window, bad_at + 1, head)? {
        return Err(corruption(
            path,
            bad_at,
            format!("{reason}, followed by a valid record at offset {valid_at}"),
        ));
    }
    Ok(())
}

/// Cuts the segment at `path` (`len` bytes long) back to `from` and syncs
/// it, first copying the cut bytes into a quarantine file beside it
/// (`<segment>.quarantine-<offset>`, synced with its directory entry).
/// Returns the quarantine file's path.
pub(crate) fn cut(
    fs: &dyn LogFs,
    dir: &Path,
    path: &Path,
    from: u64,
    len: u64,
    reason: &str,
) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    let quarantine = dir.join(format!("{name}.quarantine-{from:012}"));
    let segment = fs.open(path, OpenMode::Write).map_err(io(path, "open"))?;
    let out = fs
        .open(&quarantine, OpenMode::Create)
        .map_err(io(&quarantine, "create"))?;
    let mut buf = vec![0u8; COPY_CHUNK.min((len - from) as usize)];
    let mut at = from;
    while at < len {
        let n = COPY_CHUNK.min((len - at) as usize);
        segment
            .read_exact_at(&mut buf[..n], at)
            .map_err(io(path, "read"))?;
        out.write_all_at(&buf[..n], at - from)
            .map_err(io(&quarantine, "write"))?;
        at += n as u64;
    }
    out.sync_data().map_err(io(&quarantine, "sync"))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))?;
    segment
        .set_len(from)
        .and_then(|()| segment.sync_data())
        .map_err(io(path, "truncate the torn tail of"))?;
    tracing::warn!(
        file = %path.display(),
        offset = from,
        bytes = len - from,
        reason,
        quarantine = %quarantine.display(),
        "cut a torn tail (an append that was never acknowledged); its bytes are kept in the quarantine file"
    );
    Ok(quarantine)
}

/// Reads the groups of a version 3 segment from its header on, adding every
/// intact group's records to `index` and `tail`. Stops at the end of the
/// file, or at the first group that is incomplete or fails a check: returns
/// its offset and why. A group whose frames are intact but that does not
/// continue the log is [`Error::Corruption`] (no torn write makes one).
fn scan_groups(
    path: &Path,
    window: &mut Window,
    handles: &Handles,
    index: &mut Index,
    tail: &mut Tail<'_>,
) -> Result<Option<(u64, String)>> {
    let mut offset = HEADER_LEN as u64;
    let mut seen: Vec<Seen> = Vec::new();
    while offset < window.len {
        let bytes = window
            .at(offset, GROUP_HEADER_LEN)
            .map_err(io(path, "read"))?;
        if bytes.len() < GROUP_HEADER_LEN {
            return Ok(Some((offset, "incomplete group header".to_string())));
        }
        let Some(group) = GroupHeader::decode(bytes) else {
            return Ok(Some((
                offset,
                "missing or damaged group header".to_string(),
            )));
        };
        let end = offset + (GROUP_HEADER_LEN as u64) + u64::from(group.body_len);
        if end > window.len {
            return Ok(Some((
                offset,
                format!(
                    "group of {} bytes runs past the end of the file",
                    group.body_len
                ),
            )));
        }
        // Every frame of the group first; only an intact group reaches the
        // index.
        seen.clear();
        let mut at = offset + GROUP_HEADER_LEN as u64;
        let mut last_chain = *tail.chain;
        while at < end {
            let bytes = window.at(at, FRAME_LEN).map_err(io(path, "read"))?;
            let want = format::peek_body_len(bytes).map_or(FRAME_LEN, |b| FRAME_LEN + b);
            let room = (end - at) as usize;
            let bytes = window.at(at, want.min(room)).map_err(io(path, "read"))?;
            let record = match format::decode_record(&bytes[..room.min(bytes.len())], MAX_BODY_LEN)
            {
                Ok(record) => record,
                Err(FrameError::Incomplete) => {
                    return Ok(Some((
                        offset,
                        format!("incomplete record at offset {at} in the group"),
                    )));
                }
                Err(FrameError::Damaged(reason)) => {
                    return Ok(Some((
                        offset,
                        format!("{reason} at offset {at} in the group"),
                    )));
                }
            };
            seen.push(Seen {
                offset: at,
                key: stream_key(record.stream),
                position: record.position,
                revision: record.revision,
                batch_end: record.is_batch_end(),
                recorded_at: record.recorded_at,
            });
            last_chain = record.chain();
            at += record.frame_len as u64;
        }
        // The frames are intact: anything that does not fit now is damage.
        if group.first_position != index.head || group.count as usize != seen.len() {
            return Err(corruption(
                path,
                offset,
                format!(
                    "group header says {} records from position {} but the group holds {} records and the log is at {}",
                    group.count,
                    group.first_position,
                    seen.len(),
                    index.head
                ),
            ));
        }
        if !seen.last().is_some_and(|s| s.batch_end) {
            return Err(corruption(
                path,
                offset,
                "group ends inside an append batch".to_string(),
            ));
        }
        let mut batch = Batch {
            pending: Vec::new(),
            chain: *tail.chain,
            recorded_at: *tail.recorded_at,
        };
        for s in &seen {
            check_continuity(
                path,
                s.offset,
                s.position,
                s.revision,
                s.key,
                (handles, index),
                &batch.pending,
            )?;
            batch.recorded_at = batch.recorded_at.max(s.recorded_at);
            batch.pending.push(Pending {
                key: s.key,
                revision: s.revision,
                offset: s.offset as u32,
            });
            if s.batch_end {
                batch.chain = last_chain;
                batch.finish(index, end, tail);
            }
        }
        offset = end;
    }
    Ok(None)
}

/// The fields of a record recovery keeps while checking its group.
struct Seen {
    offset: u64,
    key: StreamKey,
    position: Position,
    revision: Revision,
    batch_end: bool,
    recorded_at: Timestamp,
}

/// Decides what the group at `bad_at` (failing for `reason`) is: a torn
/// write only in the last segment and when no later group says `bad_at` had
/// been synced; otherwise [`Error::Corruption`]. Linear in the bytes after
/// `bad_at`.
fn check_torn_group(
    path: &Path,
    window: &mut Window,
    bad_at: u64,
    reason: &str,
    is_last: bool,
    head: Position,
) -> Result<()> {
    if !is_last {
        return Err(corruption(
            path,
            bad_at,
            format!("{reason} in a sealed segment"),
        ));
    }
    let later = find_group_header(window, bad_at + 1, |h| {
        h.first_position > head && u64::from(h.synced_end) > bad_at
    })
    .map_err(io(path, "read"))?;
    if let Some((at, h)) = later {
        return Err(corruption(
            path,
            bad_at,
            format!(
                "{reason}, but the group at offset {at} (positions from {}) was written after these bytes were on disk",
                h.first_position
            ),
        ));
    }
    Ok(())
}

/// The first intact group header at or after `from` that `wanted` accepts,
/// reading every byte once.
fn find_group_header(
    window: &mut Window,
    from: u64,
    wanted: impl Fn(&GroupHeader) -> bool,
) -> std::io::Result<Option<(u64, GroupHeader)>> {
    let mut at = from;
    while at + GROUP_HEADER_LEN as u64 <= window.len {
        let bytes = window.at(at, GROUP_HEADER_LEN)?;
        let candidates = bytes.len() + 1 - GROUP_HEADER_LEN;
        for i in 0..candidates {
            if format::is_group_header(&bytes[i..])
                && let Some(h) = GroupHeader::decode(&bytes[i..])
                && wanted(&h)
            {
                return Ok(Some((at + i as u64, h)));
            }
        }
        at += candidates as u64;
    }
    Ok(None)
}

/// The offset of the first valid record at or after `from`, looking only at
/// frames that could be records of this log (position at least `head`).
fn find_valid_record(window: &mut Window, from: u64, head: Position) -> Result<Option<u64>> {
    let len = window.len;
    let mut offset = from;
    while offset + (FRAME_LEN + MIN_BODY_LEN) as u64 <= len {
        let bytes = window
            .at(offset, FRAME_LEN + 8)
            .map_err(|e| Error::io("read", e))?;
        let body_len = format::peek_body_len(bytes).unwrap_or(0);
        let plausible = (MIN_BODY_LEN..=MAX_BODY_LEN).contains(&body_len)
            && offset + (FRAME_LEN + body_len) as u64 <= len
            && u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) >= head.0;
        if plausible {
            let bytes = window
                .at(offset, FRAME_LEN + body_len)
                .map_err(|e| Error::io("read", e))?;
            if format::decode_record(bytes, MAX_BODY_LEN).is_ok() {
                return Ok(Some(offset));
            }
        }
        offset += 1;
    }
    Ok(None)
}
