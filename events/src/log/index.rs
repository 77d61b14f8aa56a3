//! The in-memory index of the embedded log: the byte offset of every
//! acknowledged record, and the positions of every stream's events.
//!
//! Streams are keyed by a 128-bit hash of their name (collisions are out of
//! reach at any log size): an entry is 40 bytes, and with the hash table's
//! spare buckets a million runs (2M events) hold about 100 MB.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::ids::{Position, Revision};

/// A stream's key in the index: xxh3-128 of its name, as two `u64`s so an
/// entry is 8-byte aligned (a `u128` would pad it from 40 to 48 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamKey {
    lo: u64,
    hi: u64,
}

impl Hash for StreamKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a hash: feed the table its low half as it is.
        state.write_u64(self.lo);
    }
}

/// The key of the stream named `name`.
pub(crate) fn stream_key(name: &[u8]) -> StreamKey {
    let h = xxhash_rust::xxh3::xxh3_128(name);
    StreamKey {
        lo: h as u64,
        hi: (h >> 64) as u64,
    }
}

/// A hash map keyed by stream.
pub(crate) type StreamMap<V> = HashMap<StreamKey, V, BuildHasherDefault<KeyHasher>>;

/// The keys are hashes already: use their low bits as they are.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One segment file, as far as it is acknowledged.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    /// Position of the segment's first record.
    pub(crate) first: Position,
    /// The file, for error messages.
    pub(crate) path: Arc<Path>,
    /// Byte offset of each acknowledged record, in position order.
    pub(crate) offsets: Vec<u32>,
    /// Byte offset just past the last acknowledged record.
    pub(crate) end: u64,
    /// The segment's format version.
    pub(crate) version: u32,
}

impl SegmentIndex {
    /// A segment with no records yet.
    pub(crate) fn new(first: Position, path: Arc<Path>, version: u32) -> Self {
        Self {
            first,
            path,
            offsets: Vec::new(),
            end: super::format::HEADER_LEN as u64,
            version,
        }
    }

    /// The byte range of the records `i..j` (indexes into this segment).
    pub(crate) fn byte_range(&self, i: usize, j: usize) -> (u64, u64) {
        let start = u64::from(self.offsets[i]);
        let end = self.offsets.get(j).map_or(self.end, |&o| u64::from(o));
        (start, end)
    }
}

/// Where one record lives.
#[derive(Clone, Debug)]
pub(crate) struct RecordRef {
    pub(crate) path: Arc<Path>,
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

/// What readers may see: acknowledged records only.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<SegmentIndex>,
    streams: StreamMap<SmallVec<[u64; 2]>>,
    /// The position the next record will get.
    pub(crate) head: Position,
}

impl Index {
    /// The last revision of a stream, `None` if it has no events.
    pub(crate) fn last_revision(&self, key: StreamKey) -> Option<Revision> {
        self.streams.get(&key).map(|p| Revision(p.len() as u64 - 1))
    }

    /// The positions of a stream's events, in revision order.
    pub(crate) fn stream_positions(&self, key: StreamKey) -> &[u64] {
        self.streams.get(&key).map_or(&[], |p| p.as_slice())
    }

    /// Records an acknowledged record at `offset` of the last segment.
    pub(crate) fn push(&mut self, key: StreamKey, offset: u32) {
        let position = self.head.0;
        self.streams.entry(key).or_default().push(position);
        self.segments
            .last_mut()
            .expect("the log always has a segment")
            .offsets
            .push(offset);
        self.head = self.head.next();
    }

    /// The index of the segment holding `position`.
    pub(crate) fn segment_of(&self, position: Position) -> usize {
        self.segments
            .partition_point(|s| s.first <= position)
            .saturating_sub(1)
    }

    /// Where the record at `position` lives, if it is acknowledged.
    pub(crate) fn locate(&self, position: Position) -> Option<RecordRef> {
        if position >= self.head {
            return None;
        }
        let seg = &self.segments[self.segment_of(position)];
        let i = (position.0 - seg.first.0) as usize;
        let (start, end) = seg.byte_range(i, i + 1);
        Some(RecordRef {
            path: seg.path.clone(),
            offset: start,
            len: (end - start) as usize,
        })
    }

    /// How many streams the log holds.
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }
}
