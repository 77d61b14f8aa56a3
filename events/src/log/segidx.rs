//! The index file of a sealed segment, `seg-<first position>.idx` beside
//! `seg-<first position>.log`: written once when the segment is sealed (and
//! again whenever it is missing or does not check out), never changed.
//!
//! It holds what the in-memory index held for the segment, so that opening
//! the log reads a few kilobytes per sealed segment instead of every record,
//! and the process keeps only a Bloom filter and a fence key per directory
//! block in memory. The log stays the source of truth: the file is derived
//! from the segment, every block carries its own checksum, and a file that
//! does not match its segment (length, record count, the chain value the
//! next segment's header continues from) is rebuilt from the segment.
//!
//! ```text
//! block 0, header
//! +0   magic          8 bytes  "NHLOGIDX"
//! +8   version        u32      INDEX_VERSION
//! +12  segment_version u32     the segment's format version
//! +16  first_position u64      the segment's first position
//! +24  count          u64      records in the segment
//! +32  segment_len    u64      bytes of the segment file
//! +40  last_chain     32 bytes chain value of the segment's last record
//! +72  max_recorded_at u64     latest recorded_at in the segment
//! +80  new_streams    u64      streams whose first event is in the segment
//! +88  offset_blocks  u64      blocks of record offsets
//! +96  dir_blocks     u64      blocks of stream directory entries
//! +104 bloom_blocks   u64      64-byte Bloom filter blocks
//! blocks 1..: offsets, 1023 u32 per block: byte offset of each record
//! then: directory, 113 entries per block, sorted by stream key then
//!       revision; an entry is key (16 bytes), revision u64, record number
//!       u32, byte offset u32, byte length u32
//! every block is 4096 bytes, the last 4 being crc32c(block number, bytes)
//! then, to the end: Bloom filter (bloom_blocks x 64 bytes), the fence keys
//! (the first key of each directory block, 16 bytes each), crc32c of both
//! ```
//!
//! Reading one stream costs a Bloom probe per sealed segment in memory and,
//! for each segment that may hold the stream, one or two directory blocks
//! (the fence keys say which), whatever the log's length.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{CHAIN_LEN, Chain};
use super::handles::Handles;
use super::index::{MemBody, RecordRef, StreamKey};
use super::io::{LogFs, OpenMode};
use crate::error::{Error, Result};
use crate::ids::{Position, Revision, Timestamp};

const MAGIC: [u8; 8] = *b"NHLOGIDX";
/// The index file format this build writes and reads.
const INDEX_VERSION: u32 = 1;
/// Every block of the file.
const BLOCK: usize = 4096;
/// Usable bytes of a block (the rest is its checksum).
const BLOCK_DATA: usize = BLOCK - 4;
/// Record offsets per block.
const OFFSETS_PER_BLOCK: usize = BLOCK_DATA / 4;
/// Size of a directory entry.
const ENTRY_LEN: usize = 36;
/// Directory entries per block.
const ENTRIES_PER_BLOCK: usize = BLOCK_DATA / ENTRY_LEN;
/// Bloom filter bits per stream (with 7 probes in one 512-bit block, about
/// one false positive in 1,000).
const BLOOM_BITS_PER_KEY: usize = 16;
/// Bloom probes per key.
const BLOOM_PROBES: u32 = 7;

/// The index file of the segment at `segment`.
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// What a sealed segment is, as its index file describes it (and as opening
/// checks against the segment and the next one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub(crate) segment_version: u32,
    pub(crate) first: Position,
    pub(crate) count: u64,
    pub(crate) segment_len: u64,
    pub(crate) last_chain: Chain,
    pub(crate) max_recorded_at: Timestamp,
}

/// One directory entry: where one event of a stream lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    key: u128,
    pub(crate) revision: Revision,
    pub(crate) ordinal: u32,
    offset: u32,
    len: u32,
}

/// A sealed segment's index, loaded: the header, the Bloom filter and the
/// fence keys in memory; offsets and directory read block by block.
#[derive(Debug)]
pub(crate) struct SealedIndex {
    /// The index file.
    path: Arc<Path>,
    /// The segment file.
    segment: Arc<Path>,
    pub(crate) meta: SegmentMeta,
    pub(crate) new_streams: u64,
    offset_blocks: u64,
    dir_blocks: u64,
    bloom: Box<[[u64; 8]]>,
    fences: Box<[u128]>,
    /// Whether its segment was archived out of the live log.
    pub(crate) archived: bool,
}

fn key_u128(key: StreamKey) -> u128 {
    let (lo, hi) = key.parts();
    (u128::from(hi) << 64) | u128::from(lo)
}

fn bloom_block(key: u128, blocks: usize) -> usize {
    ((u128::from(key as u64) * blocks as u128) >> 64) as usize
}

fn bloom_bits(key: u128) -> impl Iterator<Item = usize> {
    let hi = (key >> 64) as u64;
    (0..BLOOM_PROBES).map(move |i| ((hi >> (i * 9)) & 511) as usize)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn le_u128(b: &[u8], at: usize) -> u128 {
    u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"))
}

fn block_crc(number: u64, data: &[u8]) -> u32 {
    crc32c::crc32c_append(number as u32, data)
}

/// Appends one block holding `data` (at most [`BLOCK_DATA`] bytes) to `out`.
fn push_block(out: &mut Vec<u8>, data: &[u8]) {
    let number = (out.len() / BLOCK) as u64;
    let start = out.len();
    out.extend_from_slice(data);
    out.resize(start + BLOCK_DATA, 0);
    let crc = block_crc(number, &out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Builds the bytes of the index file of a sealed segment from its
/// in-memory index.
fn encode(body: &MemBody, meta: &SegmentMeta) -> Vec<u8> {
    let count = body.offsets.len();
    let end = meta.segment_len;
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    let mut new_streams = 0u64;
    for (&key, stream) in body.streams.iter() {
        if stream.first_revision == 0 {
            new_streams += 1;
        }
        for (k, &ordinal) in stream.ordinals.iter().enumerate() {
            let i = ordinal as usize;
            let offset = body.offsets[i];
            let next = body.offsets.get(i + 1).map_or(end, |&o| u64::from(o));
            entries.push(Entry {
                key: key_u128(key),
                revision: Revision(stream.first_revision + k as u64),
                ordinal,
                offset,
                len: (next - u64::from(offset)) as u32,
            });
        }
    }
    entries.sort_unstable_by_key(|e| (e.key, e.revision.0));
    let offset_blocks = count.div_ceil(OFFSETS_PER_BLOCK) as u64;
    let dir_blocks = entries.len().div_ceil(ENTRIES_PER_BLOCK) as u64;
    let streams = body.streams.len().max(1);
    let bloom_blocks = (streams * BLOOM_BITS_PER_KEY).div_ceil(512);

    let mut out = Vec::with_capacity((1 + offset_blocks + dir_blocks) as usize * BLOCK);
    let mut h = [0u8; 112];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&INDEX_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&meta.segment_version.to_le_bytes());
    h[16..24].copy_from_slice(&meta.first.0.to_le_bytes());
    h[24..32].copy_from_slice(&meta.count.to_le_bytes());
    h[32..40].copy_from_slice(&meta.segment_len.to_le_bytes());
    h[40..72].copy_from_slice(&meta.last_chain);
    h[72..80].copy_from_slice(&meta.max_recorded_at.0.to_le_bytes());
    h[80..88].copy_from_slice(&new_streams.to_le_bytes());
    h[88..96].copy_from_slice(&offset_blocks.to_le_bytes());
    h[96..104].copy_from_slice(&dir_blocks.to_le_bytes());
    h[104..112].copy_from_slice(&(bloom_blocks as u64).to_le_bytes());
    push_block(&mut out, &h);

    let mut data = Vec::with_capacity(BLOCK_DATA);
    for chunk in body.offsets.chunks(OFFSETS_PER_BLOCK) {
        data.clear();
        for o in chunk {
            data.extend_from_slice(&o.to_le_bytes());
        }
        push_block(&mut out, &data);
    }
    let mut fences = Vec::with_capacity(dir_blocks as usize);
    for chunk in entries.chunks(ENTRIES_PER_BLOCK) {
        data.clear();
        fences.push(chunk[0].key);
        for e in chunk {
            data.extend_from_slice(&e.key.to_le_bytes());
            data.extend_from_slice(&e.revision.0.to_le_bytes());
            data.extend_from_slice(&e.ordinal.to_le_bytes());
            data.extend_from_slice(&e.offset.to_le_bytes());
            data.extend_from_slice(&e.len.to_le_bytes());
        }
        push_block(&mut out, &data);
    }
    let tail_start = out.len();
    let mut bloom = vec![[0u64; 8]; bloom_blocks];
    for &key in body.streams.keys() {
        let key = key_u128(key);
        let block = &mut bloom[bloom_block(key, bloom_blocks)];
        for bit in bloom_bits(key) {
            block[bit / 64] |= 1 << (bit % 64);
        }
    }
    for block in &bloom {
        for word in block {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    for fence in &fences {
        out.extend_from_slice(&fence.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[tail_start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes the index file of a sealed segment atomically (a synced `.tmp`
/// file renamed over the old one, then the directory synced).
pub(crate) fn write(
    fs: &dyn LogFs,
    segment: &Path,
    body: &MemBody,
    meta: &SegmentMeta,
) -> Result<()> {
    let path = index_path(segment);
    let tmp = path.with_extension("idx.tmp");
    let bytes = encode(body, meta);
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let f = fs
        .open(&tmp, OpenMode::Create)
        .map_err(|e| Error::io(ctx("create", &tmp), e))?;
    f.write_all_at(&bytes, 0)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(ctx("write", &tmp), e))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(|e| Error::io(ctx("rename", &tmp), e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))?;
    Ok(())
}

/// Writes the index file of a sealed segment (see [`write`]) and loads it
/// back, checked against `meta`.
pub(crate) fn write_and_load(
    fs: &dyn LogFs,
    segment: &Arc<Path>,
    body: &MemBody,
    meta: &SegmentMeta,
) -> Result<SealedIndex> {
    write(fs, segment, body, meta)?;
    let expect = Expected {
        first: meta.first,
        segment_version: meta.segment_version,
        segment_len: meta.segment_len,
        next: None,
    };
    let unreadable = |reason: String| {
        Error::io(
            "read back the index file just written",
            std::io::Error::other(reason),
        )
    };
    SealedIndex::load(fs, segment, &expect)
        .map_err(unreadable)?
        .ok_or_else(|| unreadable("it is gone".to_owned()))
}

impl SealedIndex {
    /// Loads the index file of `segment` if it is there and describes the
    /// segment `expect` says (same first position, length, format version
    /// and, where known, record count and last chain value). `Ok(None)`
    /// when the file is missing; `Err(reason)` when it does not check out
    /// (the caller rebuilds it).
    pub(crate) fn load(
        fs: &dyn LogFs,
        segment: &Arc<Path>,
        expect: &Expected,
    ) -> std::result::Result<Option<Self>, String> {
        let path = index_path(segment);
        if !fs.exists(&path) {
            return Ok(None);
        }
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|e| format!("cannot open it: {e}"))?;
        let len = file.len().map_err(|e| format!("cannot stat it: {e}"))?;
        if len < BLOCK as u64 {
            return Err(format!("{len} bytes, shorter than its header"));
        }
        let mut h = vec![0u8; BLOCK];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if h[0..8] != MAGIC {
            return Err("bad magic bytes".to_string());
        }
        if block_crc(0, &h[..BLOCK_DATA]) != le_u32(&h, BLOCK_DATA) {
            return Err("header checksum mismatch".to_string());
        }
        if le_u32(&h, 8) != INDEX_VERSION {
            return Err(format!("index format version {}", le_u32(&h, 8)));
        }
        let mut last_chain = [0u8; CHAIN_LEN];
        last_chain.copy_from_slice(&h[40..72]);
        let meta = SegmentMeta {
            segment_version: le_u32(&h, 12),
            first: Position(le_u64(&h, 16)),
            count: le_u64(&h, 24),
            segment_len: le_u64(&h, 32),
            last_chain,
            max_recorded_at: Timestamp(le_u64(&h, 72)),
        };
        expect.check(&meta)?;
        let new_streams = le_u64(&h, 80);
        let offset_blocks = le_u64(&h, 88);
        let dir_blocks = le_u64(&h, 96);
        let bloom_blocks = le_u64(&h, 104);
        if offset_blocks != meta.count.div_ceil(OFFSETS_PER_BLOCK as u64)
            || dir_blocks != meta.count.div_ceil(ENTRIES_PER_BLOCK as u64)
            || bloom_blocks == 0
        {
            return Err("block counts do not fit the record count".to_string());
        }
        let tail_start = (1 + offset_blocks + dir_blocks) * BLOCK as u64;
        let tail_len = bloom_blocks * 64 + dir_blocks * 16 + 4;
        if len != tail_start + tail_len {
            return Err(format!(
                "{len} bytes where its header says {}",
                tail_start + tail_len
            ));
        }
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact_at(&mut tail, tail_start)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let body = tail.len() - 4;
        if crc32c::crc32c(&tail[..body]) != le_u32(&tail, body) {
            return Err("Bloom filter checksum mismatch".to_string());
        }
        let bloom: Box<[[u64; 8]]> = tail[..(bloom_blocks * 64) as usize]
            .chunks_exact(64)
            .map(|b| std::array::from_fn(|i| le_u64(b, i * 8)))
            .collect();
        let fences: Box<[u128]> = tail[(bloom_blocks * 64) as usize..body]
            .chunks_exact(16)
            .map(|b| le_u128(b, 0))
            .collect();
        Ok(Some(Self {
            path: path.into(),
            segment: segment.clone(),
            meta,
            new_streams,
            offset_blocks,
            dir_blocks,
            bloom,
            fences,
            archived: false,
        }))
    }

    /// Whether the segment may hold events of `key` (no false negatives).
    #[inline]
    pub(crate) fn may_contain(&self, key: StreamKey) -> bool {
        let key = key_u128(key);
        let block = &self.bloom[bloom_block(key, self.bloom.len())];
        bloom_bits(key).all(|bit| block[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Reads block `number` of the index file, checking its checksum.
    fn block(&self, handles: &Handles, number: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; BLOCK];
        handles
            .get(&self.path)?
            .read_exact_at(&mut b, number * BLOCK as u64)
            .map_err(|e| Error::io(format!("read {}", self.path.display()), e))?;
        if block_crc(number, &b[..BLOCK_DATA]) != le_u32(&b, BLOCK_DATA) {
            return Err(Error::Corruption {
                segment: self.path.to_path_buf(),
                offset: number * BLOCK as u64,
                reason: format!(
                    "index block {number} fails its checksum (the index is derived from {}: delete the .idx file and reopen the log to rebuild it)",
                    self.segment.display()
                ),
            });
        }
        Ok(b)
    }

    /// The events of `key` in this segment, in revision order (empty when
    /// it has none).
    pub(crate) fn lookup(&self, handles: &Handles, key: StreamKey) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if !self.may_contain(key) {
            return Ok(out);
        }
        let key = key_u128(key);
        // The first directory block whose first key is at least `key`: the
        // stream's entries start in the block before it, or in it.
        let at = self.fences.partition_point(|&f| f < key);
        if at == 0 && self.fences.first() != Some(&key) {
            return Ok(out);
        }
        let mut block = at.saturating_sub(1);
        let first_dir = 1 + self.offset_blocks;
        while block < self.dir_blocks as usize {
            if block > at.saturating_sub(1) && self.fences[block] != key {
                break;
            }
            let b = self.block(handles, first_dir + block as u64)?;
            let n = if block + 1 == self.dir_blocks as usize {
                self.meta.count as usize - block * ENTRIES_PER_BLOCK
            } else {
                ENTRIES_PER_BLOCK
            };
            for i in 0..n {
                let e = &b[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
                if le_u128(e, 0) == key {
                    out.push(Entry {
                        key,
                        revision: Revision(le_u64(e, 16)),
                        ordinal: le_u32(e, 24),
                        offset: le_u32(e, 28),
                        len: le_u32(e, 32),
                    });
                }
            }
            block += 1;
        }
        Ok(out)
    }

    /// Where the event of `entry` lives.
    pub(crate) fn record_ref(&self, entry: &Entry) -> RecordRef {
        RecordRef {
            path: self.segment.clone(),
            offset: u64::from(entry.offset),
            len: entry.len as usize,
            archived: self.archived.then_some(self.meta.first),
        }
    }

    /// The byte offsets of records `i..=j` of the segment (`j` may be the
    /// record count: the segment's end).
    pub(crate) fn offsets(&self, handles: &Handles, i: usize, j: usize) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(j + 1 - i);
        let mut block_no = u64::MAX;
        let mut block = Vec::new();
        for r in i..=j {
            if r as u64 >= self.meta.count {
                out.push(self.meta.segment_len);
                continue;
            }
            let number = 1 + (r / OFFSETS_PER_BLOCK) as u64;
            if number != block_no {
                block = self.block(handles, number)?;
                block_no = number;
            }
            out.push(u64::from(le_u32(&block, (r % OFFSETS_PER_BLOCK) * 4)));
        }
        Ok(out)
    }
}

/// What opening knows a sealed segment to be, to check its index file
/// against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected {
    pub(crate) first: Position,
    pub(crate) segment_version: u32,
    pub(crate) segment_len: u64,
    /// The next segment's first position and chain seed: the segment ends
    /// just before it, with that chain value.
    pub(crate) next: Option<(Position, Chain)>,
}

impl Expected {
    fn check(&self, meta: &SegmentMeta) -> std::result::Result<(), String> {
        if meta.first != self.first {
            return Err(format!(
                "it indexes a segment starting at {} (not {})",
                meta.first, self.first
            ));
        }
        if meta.segment_version != self.segment_version || meta.segment_len != self.segment_len {
            return Err(format!(
                "it indexes a segment of {} bytes (the segment has {})",
                meta.segment_len, self.segment_len
            ));
        }
        if let Some((next, seed)) = self.next {
            if meta.first.0 + meta.count != next.0 {
                return Err(format!(
                    "it indexes {} records but the next segment starts at {next}",
                    meta.count
                ));
            }
            if meta.last_chain != seed {
                return Err(
                    "its last chain value is not the one the next segment continues from"
                        .to_string(),
                );
            }
        }
        Ok(())
    }
}
