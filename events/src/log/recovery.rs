//! Opening the embedded log: find the segments, check every record, rebuild
//! the index, cut a torn tail, and refuse to open on corruption.
//!
//! A record that fails its checks is a torn tail only if it is in the last
//! segment and no valid record follows it; the log is then cut back to the
//! end of the last complete append batch. Anything else is
//! [`Error::Corruption`] naming the segment file and byte offset.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    self, Chain, FRAME_LEN, FrameError, GENESIS_CHAIN, HEADER_LEN, MAX_BODY_LEN, MIN_BODY_LEN,
    RecordView, SegmentHeader,
};
use super::index::{Index, SegmentIndex, StreamKey, stream_key};
use super::writer::{self, WriterState};
use crate::error::{Error, Result};
use crate::ids::{Position, Revision, Timestamp};

/// Bytes read from a segment at a time while scanning.
const CHUNK: usize = 8 << 20;

/// What opening found.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    /// Where the writer resumes; `None` when opened read-only.
    pub(crate) writer: Option<WriterState>,
}

/// How a log is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// By the process holding the lock: cuts a torn tail, resumes writing.
    Write,
    /// Beside a writer: changes nothing on disk and stops at the first
    /// incomplete batch (the writer's append in progress).
    ReadOnly,
}

/// The segment files of `dir`, sorted by first position. With write access,
/// removes leftover `.tmp` files of an interrupted segment creation.
pub(crate) fn list_segments(dir: &Path, access: Access) -> Result<Vec<(Position, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.starts_with("seg-") && name.ends_with(".log.tmp") {
            if access == Access::ReadOnly {
                continue;
            }
            tracing::warn!(file = %path.display(), "removing an unfinished segment file");
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            continue;
        }
        match format::parse_segment_file_name(name) {
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
pub(crate) fn recover(dir: &Path, access: Access) -> Result<Recovered> {
    let segments = list_segments(dir, access)?;
    let mut index = Index::default();
    let mut chain = GENESIS_CHAIN;
    let mut recorded_at = Timestamp(0);
    if segments.is_empty() && access == Access::ReadOnly {
        return Ok(Recovered {
            index,
            writer: None,
        });
    }
    if segments.is_empty() {
        let (file, read, path) = writer::create_segment(dir, Position::START, &GENESIS_CHAIN)?;
        index.segments.push(SegmentIndex {
            first: Position::START,
            path,
            file: Arc::new(read),
            offsets: Vec::new(),
            end: HEADER_LEN as u64,
        });
        return Ok(Recovered {
            index,
            writer: Some(WriterState {
                file,
                len: HEADER_LEN as u64,
                chain,
                recorded_at: Timestamp(0),
            }),
        });
    }
    let count = segments.len();
    for (i, (first, path)) in segments.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let tail = Tail {
            chain: &mut chain,
            recorded_at: &mut recorded_at,
        };
        scan_segment(&path, first, &mut index, tail, is_last, access)?;
    }
    if access == Access::ReadOnly {
        return Ok(Recovered {
            index,
            writer: None,
        });
    }
    let last = index.segments.last().expect("at least one segment");
    let path = last.path.clone();
    let len = last.end;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    Ok(Recovered {
        index,
        writer: Some(WriterState {
            file,
            len,
            chain,
            recorded_at,
        }),
    })
}

/// Reads a file in large chunks, keeping a window of it in memory.
struct Window {
    file: File,
    len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl Window {
    /// The bytes from `offset` to the end of the window, holding at least
    /// `want` bytes unless the file ends first.
    fn at(&mut self, offset: u64, want: usize) -> std::io::Result<&[u8]> {
        let have_end = self.start + self.buf.len() as u64;
        if offset < self.start || offset + want as u64 > have_end {
            let size = (want.max(CHUNK) as u64).min(self.len.saturating_sub(offset)) as usize;
            self.buf.resize(size, 0);
            self.file.read_exact_at(&mut self.buf, offset)?;
            self.start = offset;
        }
        Ok(&self.buf[(offset - self.start) as usize..])
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
    offset: u32,
}

/// Checks one segment and adds its records to `index`; cuts a torn tail
/// (only ever in the last segment) when opened for writing.
fn scan_segment(
    path: &Path,
    first: Position,
    index: &mut Index,
    mut tail: Tail<'_>,
    is_last: bool,
    access: Access,
) -> Result<()> {
    let (file, len) = open_segment(path, first, index, tail.chain)?;
    let mut window = Window {
        file,
        len,
        buf: Vec::new(),
        start: 0,
    };
    let scanned = scan_records(path, &mut window, index, &mut tail)?;
    let good_end = index.segments.last().expect("pushed above").end;
    if good_end == len {
        return Ok(());
    }
    // Records from `good_end` on are not complete batches: either scanning
    // stopped at a bad record, or the file ends inside a batch.
    let (bad_at, reason) = scanned
        .stop
        .unwrap_or((scanned.offset, "unfinished append batch".to_string()));
    check_torn_tail(path, &mut window, bad_at, reason, is_last, index.head)?;
    if access == Access::ReadOnly {
        // The writer's append in progress, or a torn tail it will cut.
        return Ok(());
    }
    cut_torn_tail(path, good_end, len)
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
/// scanning, and its length.
fn open_segment(
    path: &Path,
    first: Position,
    index: &mut Index,
    chain: &Chain,
) -> Result<(File, u64)> {
    let file = File::open(path).map_err(io(path, "open"))?;
    let len = file.metadata().map_err(io(path, "stat"))?.len();
    check_header(path, &file, len, first, index.head, chain)?;
    let read = File::open(path).map_err(io(path, "open"))?;
    index.segments.push(SegmentIndex {
        first,
        path: path.into(),
        file: Arc::new(read),
        offsets: Vec::new(),
        end: HEADER_LEN as u64,
    });
    Ok((file, len))
}

/// Reads the header of the segment at `path` (`len` bytes long) and checks
/// that the segment continues the log: it starts at `first` (the position its
/// name says), which is `head` (where the log before it ends), and its chain
/// seed is `chain` (the chain value of the log before it).
fn check_header(
    path: &Path,
    file: &File,
    len: u64,
    first: Position,
    head: Position,
    chain: &Chain,
) -> Result<()> {
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
                "segment starts at position {first} but the log before it ends at {head} (a segment is missing or duplicated)"
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
    Ok(())
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
        let key = check_record(path, offset, &record, index, &batch.pending)?;
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
    index: &Index,
    pending: &[Pending],
) -> Result<StreamKey> {
    let expected_position = Position(index.head.0 + pending.len() as u64);
    if record.position != expected_position {
        return Err(corruption(
            path,
            offset,
            format!(
                "record has position {} where {expected_position} was expected",
                record.position
            ),
        ));
    }
    let key = stream_key(record.stream);
    if pending.first().is_some_and(|p| p.key != key) {
        return Err(corruption(
            path,
            offset,
            "an append batch mixes streams".to_string(),
        ));
    }
    let expected_revision =
        Revision(index.last_revision(key).map_or(0, |r| r.0 + 1) + pending.len() as u64);
    if record.revision != expected_revision {
        return Err(corruption(
            path,
            offset,
            format!(
                "record has stream revision {} where {expected_revision} was expected",
                record.revision
            ),
        ));
    }
    Ok(key)
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
            offset: offset as u32,
        });
    }

    /// The batch is complete and ends at `end`: adds its records to `index`
    /// and carries its chain value and time to `tail`.
    #[inline]
    fn finish(&mut self, index: &mut Index, end: u64, tail: &mut Tail<'_>) {
        for p in self.pending.drain(..) {
            index.push(p.key, p.offset);
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

/// Cuts the segment at `path` (`len` bytes long) back to `good_end`, the end
/// of its last complete append batch, and syncs it.
fn cut_torn_tail(path: &Path, good_end: u64, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path, "open"))?;
    file.set_len(good_end)
        .and_then(|()| file.sync_all())
        .map_err(io(path, "truncate the torn tail of"))?;
    tracing::warn!(
        file = %path.display(),
        offset = good_end,
        bytes = len - good_end,
        "cut a torn tail (an append that was never acknowledged)"
    );
    Ok(())
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
