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
    SegmentHeader,
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
    tail: Tail<'_>,
    is_last: bool,
    access: Access,
) -> Result<()> {
    // Formats the message only on error: this sits on the per-record path.
    let io = |what: &'static str| move |e| Error::io(format!("{what} {}", path.display()), e);
    let corruption = |offset: u64, reason: String| Error::Corruption {
        segment: path.to_path_buf(),
        offset,
        reason,
    };
    let file = File::open(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    let mut header = vec![0u8; HEADER_LEN.min(len as usize)];
    file.read_exact_at(&mut header, 0).map_err(io("read"))?;
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
    if first != index.head {
        return Err(corruption(
            0,
            format!(
                "segment starts at position {first} but the log before it ends at {} (a segment is missing or duplicated)",
                index.head
            ),
        ));
    }
    if header.chain_seed != *tail.chain {
        return Err(Error::ChainBroken {
            position: first,
            segment: path.to_path_buf(),
            offset: 0,
        });
    }
    let read = File::open(path).map_err(io("open"))?;
    index.segments.push(SegmentIndex {
        first,
        path: path.into(),
        file: Arc::new(read),
        offsets: Vec::new(),
        end: HEADER_LEN as u64,
    });

    let mut window = Window {
        file,
        len,
        buf: Vec::new(),
        start: 0,
    };
    let mut offset = HEADER_LEN as u64;
    let mut pending: Vec<Pending> = Vec::new();
    let mut pending_chain;
    let mut pending_time = *tail.recorded_at;
    // Where the records stop being complete batches, and why.
    let mut stop: Option<(u64, String)> = None;
    while offset < len {
        let bytes = window.at(offset, FRAME_LEN).map_err(io("read"))?;
        let want = format::peek_body_len(bytes).map_or(FRAME_LEN, |b| FRAME_LEN + b);
        let bytes = window
            .at(offset, want.min(FRAME_LEN + MAX_BODY_LEN))
            .map_err(io("read"))?;
        let record = match format::decode_record(bytes, MAX_BODY_LEN) {
            Ok(record) => record,
            Err(FrameError::Incomplete) => {
                stop = Some((offset, "incomplete record".to_string()));
                break;
            }
            Err(FrameError::Damaged(reason)) => {
                stop = Some((offset, reason));
                break;
            }
        };
        let expected_position = Position(index.head.0 + pending.len() as u64);
        if record.position != expected_position {
            return Err(corruption(
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
                offset,
                "an append batch mixes streams".to_string(),
            ));
        }
        let expected_revision =
            Revision(index.last_revision(key).map_or(0, |r| r.0 + 1) + pending.len() as u64);
        if record.revision != expected_revision {
            return Err(corruption(
                offset,
                format!(
                    "record has stream revision {} where {expected_revision} was expected",
                    record.revision
                ),
            ));
        }
        // The chain itself is checked by `verify` (it costs a hash per
        // record); opening only carries the last value forward.
        pending_chain = record.chain();
        pending_time = pending_time.max(record.recorded_at);
        pending.push(Pending {
            key,
            offset: offset as u32,
        });
        let batch_end = record.is_batch_end();
        offset += record.frame_len as u64;
        if batch_end {
            for p in pending.drain(..) {
                index.push(p.key, p.offset);
            }
            index.segments.last_mut().expect("pushed above").end = offset;
            *tail.chain = pending_chain;
            *tail.recorded_at = pending_time;
        }
    }
    let good_end = index.segments.last().expect("pushed above").end;
    if good_end == len {
        return Ok(());
    }
    // Records from `good_end` on are not complete batches: either scanning
    // stopped at a bad record, or the file ends inside a batch.
    let (bad_at, reason) = stop.unwrap_or((offset, "unfinished append batch".to_string()));
    if !is_last {
        return Err(corruption(bad_at, format!("{reason} in a sealed segment")));
    }
    if let Some(valid_at) = find_valid_record(&mut window, bad_at + 1, index.head)? {
        return Err(corruption(
            bad_at,
            format!("{reason}, followed by a valid record at offset {valid_at}"),
        ));
    }
    if access == Access::ReadOnly {
        // The writer's append in progress, or a torn tail it will cut.
        return Ok(());
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    file.set_len(good_end)
        .and_then(|()| file.sync_all())
        .map_err(io("truncate the torn tail of"))?;
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
