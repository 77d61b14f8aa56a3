//! The index of the embedded log: for each segment, the byte offset of
//! every acknowledged record and where each stream's events are.
//!
//! The last segment (the one the writer appends to) is indexed in memory.
//! A sealed segment is indexed by its index file (`segidx`), of which only a
//! Bloom filter and fence keys stay in memory; between sealing and the file
//! being written, its in-memory index is kept frozen. Memory is so bounded
//! by the segment size, not by the log's length.
//!
//! Streams are keyed by a 128-bit hash of their name (collisions are out of
//! reach at any log size).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use smallvec::SmallVec;

use super::handles::Handles;
use super::manifest::Manifest;
use super::segidx::SealedIndex;
use crate::error::Result;
use crate::ids::{Position, Revision};

/// A stream's key in the index: xxh3-128 of its name, as two `u64`s so an
/// entry is 8-byte aligned (a `u128` would pad it from 40 to 48 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamKey {
    lo: u64,
    hi: u64,
}

impl StreamKey {
    /// The key's two halves, low first.
    pub(crate) fn parts(self) -> (u64, u64) {
        (self.lo, self.hi)
    }
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

/// The events of one stream within one segment.
#[derive(Debug, Default)]
pub(crate) struct MemStream {
    /// Revision of the stream's first event in the segment.
    pub(crate) first_revision: u64,
    /// Record numbers (within the segment) of its events, in revision order.
    pub(crate) ordinals: SmallVec<[u32; 2]>,
}

/// A segment indexed in memory.
#[derive(Debug, Default)]
pub(crate) struct MemBody {
    /// Byte offset of each acknowledged record, in position order.
    pub(crate) offsets: Vec<u32>,
    pub(crate) streams: StreamMap<MemStream>,
}

impl MemBody {
    fn last_revision(&self, key: StreamKey) -> Option<Revision> {
        self.streams
            .get(&key)
            .map(|s| Revision(s.first_revision + s.ordinals.len() as u64 - 1))
    }

    fn new_streams(&self) -> u64 {
        self.streams
            .values()
            .filter(|s| s.first_revision == 0)
            .count() as u64
    }
}

/// How a segment is indexed.
#[derive(Debug)]
pub(crate) enum Body {
    /// In memory, growing: the segment being written (or scanned).
    Active(MemBody),
    /// In memory, sealed, until its index file is written.
    Frozen(Arc<MemBody>),
    /// By its index file.
    Sealed(Arc<SealedIndex>),
}

/// One segment file, as far as it is acknowledged.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    /// Position of the segment's first record.
    pub(crate) first: Position,
    /// The file, for error messages.
    pub(crate) path: Arc<Path>,
    /// Byte offset just past the last acknowledged record.
    pub(crate) end: u64,
    /// The segment's format version.
    pub(crate) version: u32,
    pub(crate) body: Body,
}

impl SegmentIndex {
    /// A segment with no records yet.
    pub(crate) fn new(first: Position, path: Arc<Path>, version: u32) -> Self {
        Self {
            first,
            path,
            end: super::format::HEADER_LEN as u64,
            version,
            body: Body::Active(MemBody::default()),
        }
    }

    /// A sealed segment indexed by its index file.
    pub(crate) fn sealed(path: Arc<Path>, index: SealedIndex) -> Self {
        Self {
            first: index.meta.first,
            path,
            end: index.meta.segment_len,
            version: index.meta.segment_version,
            body: Body::Sealed(Arc::new(index)),
        }
    }

    /// How many acknowledged records it holds.
    pub(crate) fn count(&self) -> u64 {
        match &self.body {
            Body::Active(m) => m.offsets.len() as u64,
            Body::Frozen(m) => m.offsets.len() as u64,
            Body::Sealed(s) => s.meta.count,
        }
    }

    /// The in-memory index, unless the segment is indexed by its file.
    pub(crate) fn mem(&self) -> Option<&MemBody> {
        match &self.body {
            Body::Active(m) => Some(m),
            Body::Frozen(m) => Some(m),
            Body::Sealed(_) => None,
        }
    }

    /// Seals an in-memory segment: its index no longer changes.
    pub(crate) fn freeze(&mut self) -> Option<Arc<MemBody>> {
        let body = std::mem::replace(&mut self.body, Body::Active(MemBody::default()));
        let (body, frozen) = match body {
            Body::Active(m) => {
                let m = Arc::new(m);
                (Body::Frozen(m.clone()), Some(m))
            }
            Body::Frozen(m) => (Body::Frozen(m.clone()), Some(m)),
            sealed @ Body::Sealed(_) => (sealed, None),
        };
        self.body = body;
        frozen
    }

    /// Where the records `i..=j` start (`j` may be the record count: then
    /// the last is the segment's end). In-memory offsets are copied now;
    /// an index file is read by [`Offsets::load`], outside the index lock.
    pub(crate) fn offsets(&self, i: usize, j: usize) -> Offsets {
        match &self.body {
            Body::Active(m) => Offsets::Ready(mem_offsets(m, self.end, i, j)),
            Body::Frozen(m) => Offsets::Ready(mem_offsets(m, self.end, i, j)),
            Body::Sealed(s) => Offsets::Sealed(s.clone(), i, j),
        }
    }
}

fn mem_offsets(m: &MemBody, end: u64, i: usize, j: usize) -> Vec<u64> {
    (i..=j)
        .map(|r| m.offsets.get(r).map_or(end, |&o| u64::from(o)))
        .collect()
}

/// Record offsets, read or to be read.
pub(crate) enum Offsets {
    Ready(Vec<u64>),
    Sealed(Arc<SealedIndex>, usize, usize),
}

impl Offsets {
    /// The offsets, reading the index file if needed.
    pub(crate) fn load(self, handles: &Handles) -> Result<Vec<u64>> {
        match self {
            Offsets::Ready(v) => Ok(v),
            Offsets::Sealed(s, i, j) => s.offsets(handles, i, j),
        }
    }
}

/// Where one record lives.
#[derive(Clone, Debug)]
pub(crate) struct RecordRef {
    pub(crate) path: Arc<Path>,
    pub(crate) offset: u64,
    pub(crate) len: usize,
    /// The first position of its segment when that segment was archived
    /// (the record is no longer in the live log).
    pub(crate) archived: Option<Position>,
}

/// A stream's events in one segment, found under the index lock: ready, or
/// in an index file still to be read.
enum Found {
    Ready(Vec<(Revision, RecordRef)>),
    Sealed(Arc<SealedIndex>),
}

/// What readers may see: acknowledged records only.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<SegmentIndex>,
    /// The position the next record will get.
    pub(crate) head: Position,
    /// The segments archived before the first live one (`log::archive`).
    pub(crate) archive: Archive,
}

/// What was archived out of the live log: the manifest and, for each
/// archived segment, its index file (kept in the live directory), so that
/// revisions of streams begun there are known and reading one says where
/// its events went.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    pub(crate) manifest: Manifest,
    /// One per manifest entry; `None` when its index file is missing.
    pub(crate) indexes: Vec<Option<Arc<SealedIndex>>>,
}

impl Archive {
    /// The position of the first event not archived.
    pub(crate) fn end(&self) -> Position {
        self.manifest.end()
    }

    /// Where the archived segment starting at `first` went.
    pub(crate) fn dir_of(&self, first: Position) -> std::path::PathBuf {
        self.manifest
            .segment_of(first)
            .map(|s| s.archive.clone())
            .unwrap_or_default()
    }
}

impl Index {
    /// The last revision of a stream, `None` if it has no events. Reads an
    /// index file only when the stream is not in the in-memory segments and
    /// a sealed segment's Bloom filter says it may be there.
    pub(crate) fn last_revision(
        &self,
        handles: &Handles,
        key: StreamKey,
    ) -> Result<Option<Revision>> {
        for seg in self.segments.iter().rev() {
            match &seg.body {
                Body::Active(m) => {
                    if let Some(r) = m.last_revision(key) {
                        return Ok(Some(r));
                    }
                }
                Body::Frozen(m) => {
                    if let Some(r) = m.last_revision(key) {
                        return Ok(Some(r));
                    }
                }
                Body::Sealed(s) => {
                    if s.may_contain(key)
                        && let Some(e) = s.lookup(handles, key)?.last()
                    {
                        return Ok(Some(e.revision));
                    }
                }
            }
        }
        for s in self.archive.indexes.iter().rev().flatten() {
            if s.may_contain(key)
                && let Some(e) = s.lookup(handles, key)?.last()
            {
                return Ok(Some(e.revision));
            }
        }
        Ok(None)
    }

    /// The last revision of a stream in the last segment only.
    pub(crate) fn last_revision_in_last(&self, key: StreamKey) -> Option<Revision> {
        self.segments.last()?.mem()?.last_revision(key)
    }

    /// Where the events of a stream with revisions in the range `window`
    /// picks (given the stream's length) live, in revision order. Only the
    /// segments holding that range are looked at, and in-memory segments
    /// give only the records in it, so a read of a few events of a long
    /// stream costs what it reads. Index files are read after the index
    /// lock (`guard`) is released.
    pub(crate) fn stream_refs<'a, G>(
        guard: G,
        handles: &Handles,
        key: StreamKey,
        window: impl FnOnce(u64) -> (u64, u64),
    ) -> Result<Vec<(Revision, RecordRef)>>
    where
        G: std::ops::Deref<Target = Index> + 'a,
    {
        let len = guard.last_revision(handles, key)?.map_or(0, |r| r.0 + 1);
        let (lo, hi) = window(len);
        if lo >= hi {
            return Ok(Vec::new());
        }
        // Newest segment first, down to the one holding revision `lo`.
        let mut found = Vec::new();
        let mut complete = false;
        for seg in guard.segments.iter().rev() {
            match &seg.body {
                Body::Sealed(s) => {
                    if s.may_contain(key) {
                        found.push(Found::Sealed(s.clone()));
                    }
                }
                _ => {
                    let m = seg.mem().expect("in memory");
                    if let Some(st) = m.streams.get(&key) {
                        found.push(Found::Ready(mem_refs(seg, m, st, lo, hi)));
                        if st.first_revision <= lo {
                            complete = true;
                            break;
                        }
                    }
                }
            }
        }
        // Older events may have been archived: their index files say.
        if !complete {
            for s in guard.archive.indexes.iter().rev().flatten() {
                if s.may_contain(key) {
                    found.push(Found::Sealed(s.clone()));
                }
            }
        }
        drop(guard);
        let mut parts: Vec<Vec<(Revision, RecordRef)>> = Vec::with_capacity(found.len());
        for f in found {
            match f {
                Found::Ready(v) => parts.push(v),
                Found::Sealed(s) => {
                    let entries = s.lookup(handles, key)?;
                    let reaches = entries.first().is_some_and(|e| e.revision.0 <= lo);
                    parts.push(
                        entries
                            .iter()
                            .filter(|e| (lo..hi).contains(&e.revision.0))
                            .map(|e| (e.revision, s.record_ref(e)))
                            .collect(),
                    );
                    if reaches {
                        break;
                    }
                }
            }
        }
        // Oldest segment first.
        Ok(parts.into_iter().rev().flatten().collect())
    }

    /// Records an acknowledged record of revision `revision` at `offset` of
    /// the last segment.
    pub(crate) fn push(&mut self, key: StreamKey, revision: Revision, offset: u32) {
        let seg = self
            .segments
            .last_mut()
            .expect("the log always has a segment");
        let Body::Active(m) = &mut seg.body else {
            panic!("records are only added to the active segment");
        };
        let ordinal = m.offsets.len() as u32;
        m.offsets.push(offset);
        let s = m.streams.entry(key).or_insert_with(|| MemStream {
            first_revision: revision.0,
            ordinals: SmallVec::new(),
        });
        s.ordinals.push(ordinal);
        self.head = self.head.next();
    }

    /// The index of the segment holding `position`.
    pub(crate) fn segment_of(&self, position: Position) -> usize {
        self.segments
            .partition_point(|s| s.first <= position)
            .saturating_sub(1)
    }

    /// Where the record at `position` lives, if it is acknowledged: its
    /// segment and the offsets of it and the next record (to load outside
    /// the lock).
    pub(crate) fn locate(&self, position: Position) -> Option<(Arc<Path>, Offsets)> {
        if position >= self.head || position < self.archive.end() {
            return None;
        }
        let seg = &self.segments[self.segment_of(position)];
        let i = (position.0 - seg.first.0) as usize;
        Some((seg.path.clone(), seg.offsets(i, i + 1)))
    }

    /// How many streams the log holds.
    pub(crate) fn stream_count(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match &s.body {
                Body::Active(m) => m.new_streams(),
                Body::Frozen(m) => m.new_streams(),
                Body::Sealed(s) => s.new_streams,
            })
            .sum()
    }
}

/// The records of stream `st` in the in-memory segment `seg` with
/// revisions in `lo..hi`.
fn mem_refs(
    seg: &SegmentIndex,
    m: &MemBody,
    st: &MemStream,
    lo: u64,
    hi: u64,
) -> Vec<(Revision, RecordRef)> {
    let first = st.first_revision;
    let from = lo.saturating_sub(first) as usize;
    let to = (hi.saturating_sub(first) as usize).min(st.ordinals.len());
    (from..to)
        .map(|k| {
            let i = st.ordinals[k] as usize;
            let start = u64::from(m.offsets[i]);
            let end = m.offsets.get(i + 1).map_or(seg.end, |&o| u64::from(o));
            (
                Revision(first + k as u64),
                RecordRef {
                    path: seg.path.clone(),
                    offset: start,
                    len: (end - start) as usize,
                    archived: None,
                },
            )
        })
        .collect()
}
