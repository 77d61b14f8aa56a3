//! Retention: `neonhub log archive` moves whole sealed segments older than a
//! time out of the live log into an archive directory, zstd-compressed, and
//! `audit verify --archive` proves the chain across the archive and the live
//! log.
//!
//! Archiving runs beside `neonhub serve` (which holds the log's directory
//! lock): it only reads sealed segments, which never change, and publishes
//! its work in one atomic step, the replacement of the live manifest
//! (`manifest.rs`). Per run:
//! 1. each chosen segment is compressed into `<to>/seg-<first>.log.zst`
//!    (written as `.tmp`, synced, renamed) and its index file copied beside it;
//! 2. `<to>/MANIFEST.json`, then `<log>/ARCHIVE.json` are replaced: from then
//!    on the segments are archived;
//! 3. the live segment files are removed (their index files stay: they say
//!    which streams the archived segments held).
//!
//! A crash before 2 leaves the live log as it was (the next run writes the
//! files again); after 2, opening ignores the live files the manifest lists
//! and the next run removes them. A running `serve` whose read reaches a
//! removed segment finds it in the live manifest and answers
//! [`Error::Archived`].

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;

use super::embedded::{Shared, lock_dir};
use super::format::{
    self, Chain, FRAME_LEN, FrameError, GROUP_HEADER_LEN, HEADER_LEN, MAX_BODY_LEN, SegmentHeader,
};
use super::io::{LogFs, OpenMode, StdFs};
use super::manifest::{self, ARCHIVE_MANIFEST, ArchivedSegment, LIVE_MANIFEST, Manifest};
use super::recovery::{self, Access};
use super::segidx::{self, SealedIndex};
use crate::error::{Error, Result};
use crate::ids::{Position, Timestamp};

/// Bytes read from a segment (or from a decompressor) at a time.
const CHUNK: usize = 4 << 20;
/// The zstd level archives are written with: fast (about 1 GB/s per core
/// here on log segments) and about 4x smaller.
const LEVEL: i32 = 1;

/// What [`crate::EmbeddedLog::archive`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveReport {
    /// The archive directory (absolute).
    pub archive: PathBuf,
    /// Segments moved in this run.
    pub segments: usize,
    /// Events in them.
    pub events: u64,
    /// Their bytes in the live log.
    pub bytes: u64,
    /// Their bytes compressed, in the archive.
    pub compressed_bytes: u64,
    /// The first position left in the live log: every event before it is
    /// archived (by this run or earlier ones).
    pub first_live: Position,
    /// The chain value of the last archived event, which the live log
    /// continues (zeros when nothing is archived).
    pub last_hash: [u8; 32],
    /// Why archiving stopped before the next segment (its events are too
    /// recent, it is the segment being written, ...).
    pub stopped: String,
}

/// A sealed segment chosen for archiving.
struct Chosen {
    path: PathBuf,
    first: Position,
    header: SegmentHeader,
    meta: segidx::SegmentMeta,
}

/// Archives the sealed segments of the log in `dir` whose newest event was
/// recorded before `before`, oldest first, into `to`.
/// Only events before `upto` are archived (the AgentRun table's
/// checkpoint: the table must have applied them first).
pub(crate) fn archive(
    dir: &Path,
    before: Timestamp,
    upto: Position,
    to: &Path,
) -> Result<ArchiveReport> {
    let fs: Arc<dyn LogFs> = Arc::new(StdFs);
    if !fs.exists(dir) {
        return Err(Error::NotALog {
            dir: dir.to_path_buf(),
        });
    }
    // One archive run at a time; and while no `serve` holds the log, none
    // starts (and recovers) in the middle of this run.
    let _archive_lock = lock_file(&dir.join("ARCHIVE.lock"), dir)?;
    let _dir_locks = match lock_dir(dir) {
        Ok(locks) => Some(locks),
        Err(Error::Locked { .. }) => None,
        Err(e) => return Err(e),
    };
    let live_path = dir.join(LIVE_MANIFEST);
    let mut live = Manifest::read(fs.as_ref(), &live_path, true)?.unwrap_or_default();
    remove_archived_leftovers(fs.as_ref(), dir, &live)?;

    std::fs::create_dir_all(to).map_err(|e| Error::io(format!("create {}", to.display()), e))?;
    let to =
        std::fs::canonicalize(to).map_err(|e| Error::io(format!("resolve {}", to.display()), e))?;
    if std::fs::canonicalize(dir).ok().as_deref() == Some(to.as_path()) {
        return Err(Error::InvalidInput(
            "the archive directory is the live log's directory; pick another".to_string(),
        ));
    }

    let (chosen, stopped) = choose(fs.as_ref(), dir, &live, before, upto)?;
    let mut report = ArchiveReport {
        archive: to.clone(),
        segments: chosen.len(),
        events: 0,
        bytes: 0,
        compressed_bytes: 0,
        first_live: live.end(),
        last_hash: live.last_chain(),
        stopped,
    };
    if chosen.is_empty() {
        return Ok(report);
    }
    let mut archived = Vec::with_capacity(chosen.len());
    for c in &chosen {
        let entry = compress(c, &to)?;
        report.events += entry.count;
        report.bytes += entry.segment_len;
        report.compressed_bytes += entry.compressed_len;
        archived.push(entry);
    }
    sync_dir(&to)?;
    // The archive's own manifest: the segments it holds, earlier runs' too.
    let dir_manifest_path = to.join(ARCHIVE_MANIFEST);
    let mut in_dir = Manifest::read(fs.as_ref(), &dir_manifest_path, false)
        .ok()
        .flatten()
        .unwrap_or_default();
    let firsts: Vec<u64> = archived.iter().map(|s| s.first).collect();
    in_dir.segments.retain(|s| !firsts.contains(&s.first));
    in_dir.segments.extend(archived.iter().cloned());
    in_dir.segments.sort_by_key(|s| s.first);
    in_dir.write(fs.as_ref(), &dir_manifest_path)?;
    // The point of no return: the live log now starts after them.
    live.segments.extend(archived);
    live.write(fs.as_ref(), &live_path)?;
    for c in &chosen {
        fs.remove_file(&c.path)
            .map_err(|e| Error::io(format!("remove {}", c.path.display()), e))?;
    }
    sync_dir(dir)?;
    report.first_live = live.end();
    report.last_hash = live.last_chain();
    tracing::info!(
        segments = report.segments,
        events = report.events,
        archive = %to.display(),
        "archived sealed segments"
    );
    Ok(report)
}

/// Takes an exclusive lock on the file at `path` (created if missing).
fn lock_file(path: &Path, dir: &Path) -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            dir: dir.to_path_buf(),
            lock: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("lock {}", path.display()), e))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    StdFs
        .sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))
}

/// Removes live segment files that the manifest already lists as archived
/// (a run interrupted between its manifest and the removals).
fn remove_archived_leftovers(fs: &dyn LogFs, dir: &Path, live: &Manifest) -> Result<()> {
    let end = live.end();
    for (first, path) in recovery::list_segments(fs, dir, Access::ReadOnly)? {
        if first < end {
            fs.remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// The sealed segments to archive, oldest first: contiguous from the end of
/// the archive, each with an index file that checks out and a newest event
/// before `before`; never the last segment (the one being written). Also
/// says why it stopped.
fn choose(
    fs: &dyn LogFs,
    dir: &Path,
    live: &Manifest,
    before: Timestamp,
    upto: Position,
) -> Result<(Vec<Chosen>, String)> {
    let segments = recovery::list_segments(fs, dir, Access::ReadOnly)?;
    let mut chosen = Vec::new();
    let mut next = live.end();
    let mut chain = live.last_chain();
    for (i, (first, path)) in segments.iter().enumerate() {
        let Some((_, next_path)) = segments.get(i + 1) else {
            return Ok((
                chosen,
                format!(
                    "{} is the segment being written (it is never archived)",
                    path.display()
                ),
            ));
        };
        let header = read_header(fs, path)?;
        if *first != next || header.first_position != *first {
            return Err(Error::Corruption {
                segment: path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at position {} where the log (after its archived part) continues at {next}",
                    header.first_position
                ),
            });
        }
        if header.chain_seed != chain {
            return Err(Error::ChainBroken {
                position: *first,
                segment: path.clone(),
                offset: 0,
            });
        }
        let next_header = read_header(fs, next_path)?;
        let len = fs
            .open(path, OpenMode::Read)
            .and_then(|f| f.len())
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        let expect = segidx::Expected {
            first: *first,
            segment_version: header.version,
            segment_len: len,
            next: Some((next_header.first_position, next_header.chain_seed)),
        };
        let segment: Arc<Path> = path.as_path().into();
        let meta = match SealedIndex::load(fs, &segment, &expect) {
            Ok(Some(sealed)) => sealed.meta,
            Ok(None) | Err(_) => {
                return Ok((
                    chosen,
                    format!(
                        "{} has no index file that checks out yet (opening the log, as serve does, writes it)",
                        path.display()
                    ),
                ));
            }
        };
        if meta.max_recorded_at >= before {
            return Ok((
                chosen,
                format!(
                    "{} holds events recorded at or after the cut-off (its newest at {} microseconds since the epoch)",
                    path.display(),
                    meta.max_recorded_at.0
                ),
            ));
        }
        if first.0 + meta.count > upto.0 {
            return Ok((
                chosen,
                format!(
                    "{} holds events the AgentRun table has not applied yet (its checkpoint is {upto}; serve, or any command that catches the table up, applies them)",
                    path.display()
                ),
            ));
        }
        next = Position(first.0 + meta.count);
        chain = meta.last_chain;
        chosen.push(Chosen {
            path: path.clone(),
            first: *first,
            header,
            meta,
        });
    }
    Ok((chosen, "the log has no segment".to_string()))
}

fn read_header(fs: &dyn LogFs, path: &Path) -> Result<SegmentHeader> {
    let f = fs
        .open(path, OpenMode::Read)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut h = vec![0u8; HEADER_LEN];
    f.read_exact_at(&mut h, 0)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    SegmentHeader::decode(&h).map_err(|reason| Error::BadSegment {
        path: path.to_path_buf(),
        reason,
    })
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    sha: sha2::Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    sha: sha2::Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Compresses the segment `c` into `to` (a synced `.tmp` file renamed),
/// copies its index file beside it, and returns its manifest entry.
fn compress(c: &Chosen, to: &Path) -> Result<ArchivedSegment> {
    let name = format!("{}.zst", format::segment_file_name(c.first));
    let out_path = to.join(&name);
    let tmp = to.join(format!("{name}.tmp"));
    let io_err = |what: &str, p: &Path| {
        let context = format!("{what} {}", p.display());
        move |e| Error::io(context, e)
    };
    let mut src = File::open(&c.path).map_err(io_err("open", &c.path))?;
    let out = File::create(&tmp).map_err(io_err("create", &tmp))?;
    let mut enc = zstd::stream::Encoder::new(
        Hashing {
            inner: std::io::BufWriter::with_capacity(CHUNK, out),
            sha: sha2::Sha256::new(),
            len: 0,
        },
        LEVEL,
    )
    .map_err(io_err("compress into", &tmp))?;
    enc.include_checksum(true)
        .and_then(|()| enc.multithread(2))
        .map_err(io_err("compress into", &tmp))?;
    let mut buf = vec![0u8; CHUNK];
    let mut read = 0u64;
    let mut min_recorded_at = None;
    loop {
        let n = src.read(&mut buf).map_err(io_err("read", &c.path))?;
        if n == 0 {
            break;
        }
        if read == 0 {
            min_recorded_at = first_recorded_at(&buf[..n]);
        }
        read += n as u64;
        enc.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
    }
    if read != c.meta.segment_len {
        return Err(Error::io(
            format!(
                "read {}: {read} bytes where its index says {}",
                c.path.display(),
                c.meta.segment_len
            ),
            std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    let hashing = enc.finish().map_err(io_err("write", &tmp))?;
    let sha: Chain = hashing.sha.finalize().into();
    let compressed_len = hashing.len;
    let out = hashing
        .inner
        .into_inner()
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e.into_error()))?;
    out.sync_all().map_err(io_err("sync", &tmp))?;
    drop(out);
    std::fs::rename(&tmp, &out_path).map_err(io_err("rename", &tmp))?;
    // The index file too, so that the archive stands on its own.
    let idx = segidx::index_path(&c.path);
    let idx_to = to.join(format!("{}.idx", name.trim_end_matches(".log.zst")));
    let idx_tmp = to.join(format!("{}.idx.tmp", name.trim_end_matches(".log.zst")));
    std::fs::copy(&idx, &idx_tmp).map_err(io_err("copy", &idx))?;
    File::open(&idx_tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", &idx_tmp))?;
    std::fs::rename(&idx_tmp, &idx_to).map_err(io_err("rename", &idx_tmp))?;
    Ok(ArchivedSegment {
        first: c.first.0,
        count: c.meta.count,
        seed: c.header.chain_seed,
        last_chain: c.meta.last_chain,
        min_recorded_at: min_recorded_at.unwrap_or(c.meta.max_recorded_at.0),
        max_recorded_at: c.meta.max_recorded_at.0,
        segment_version: c.header.version,
        segment_len: c.meta.segment_len,
        archive: to.to_path_buf(),
        file: name,
        compressed_len,
        sha256: sha,
        archived_at: Timestamp::now().0,
    })
}

/// The `recorded_at` of the first record of a segment whose first bytes
/// are `bytes`.
fn first_recorded_at(bytes: &[u8]) -> Option<u64> {
    let mut at = HEADER_LEN;
    if format::is_group_header(bytes.get(at..)?) {
        at += GROUP_HEADER_LEN;
    }
    format::decode_record(bytes.get(at..)?, MAX_BODY_LEN)
        .ok()
        .map(|r| r.recorded_at.0)
}

/// What [`verify_archive`] checked in the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArchiveChecked {
    pub(crate) segments: usize,
    pub(crate) events: u64,
}

/// Checks every archived segment the live manifest lists, in `dir` (the
/// archive directory, wherever it is now): the compressed file's checksum,
/// every record's CRC and position, and the chain from the first record of
/// the log to the last archived one, which must be the value the live log
/// continues from. Segments are checked on two threads, each from the chain
/// value the manifest records before it; the manifest's values link up
/// (checked when it is read), so together they prove the whole chain.
pub(crate) fn verify_archive(shared: &Shared, dir: &Path) -> Result<ArchiveChecked> {
    let manifest = shared
        .index
        .read()
        .expect("index lock")
        .archive
        .manifest
        .clone();
    if manifest.segments.is_empty() {
        return Ok(ArchiveChecked::default());
    }
    let dir_manifest_path = dir.join(ARCHIVE_MANIFEST);
    let in_dir = match Manifest::read(shared.fs.as_ref(), &dir_manifest_path, false) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(Error::ArchiveDamaged {
                path: dir_manifest_path,
                reason: "missing: this is not the archive the live log's manifest names, or its manifest was removed".to_string(),
            });
        }
        Err(e) => {
            return Err(Error::ArchiveDamaged {
                path: dir_manifest_path,
                reason: e.to_string(),
            });
        }
    };
    for s in &manifest.segments {
        let same = in_dir.segments.iter().find(|d| d.first == s.first);
        if !same.is_some_and(|d| {
            d.count == s.count && d.last_chain == s.last_chain && d.sha256 == s.sha256
        }) {
            return Err(Error::ArchiveDamaged {
                path: dir_manifest_path,
                reason: format!(
                    "it does not list {} as the live log's manifest does",
                    s.file
                ),
            });
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: std::sync::Mutex<Option<(usize, Error)>> = std::sync::Mutex::new(None);
    let threads = 2.min(manifest.segments.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(s) = manifest.segments.get(i) else {
                        return;
                    };
                    if failure.lock().expect("failure lock").is_some() {
                        return;
                    }
                    if let Err(e) = verify_segment(s, &dir.join(&s.file)) {
                        let mut f = failure.lock().expect("failure lock");
                        // Report the earliest failing segment.
                        if f.as_ref().is_none_or(|(j, _)| i < *j) {
                            *f = Some((i, e));
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some((_, e)) = failure.into_inner().expect("failure lock") {
        return Err(e);
    }
    Ok(ArchiveChecked {
        segments: manifest.segments.len(),
        events: manifest.end().0,
    })
}

/// Checks one archived segment at `path` against its manifest entry `s`.
fn verify_segment(s: &ArchivedSegment, path: &Path) -> Result<()> {
    let damaged = |reason: String| Error::ArchiveDamaged {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| {
        damaged(if e.kind() == std::io::ErrorKind::NotFound {
            "missing: an archived segment the manifest lists (restore it from a copy of the archive)".to_string()
        } else {
            format!("cannot open it: {e}")
        })
    })?;
    let mut hashing = HashingReader {
        inner: file,
        sha: sha2::Sha256::new(),
        len: 0,
    };
    let decode_err = |e: std::io::Error| damaged(format!("does not decompress: {e}"));
    {
        let mut dec =
            zstd::stream::Decoder::with_buffer(BufReader::with_capacity(1 << 20, &mut hashing))
                .map_err(decode_err)?;
        let result = check_records(s, path, &mut dec, &mut Stream::default());
        // Read the compressed file to its end, so all of it is hashed.
        let mut rest = dec.finish();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(decode_err)?;
        result?;
    }
    let sha: Chain = hashing.sha.finalize().into();
    if sha != s.sha256 || hashing.len != s.compressed_len {
        return Err(damaged(format!(
            "its SHA-256 is {} ({} bytes) where the manifest records {} ({} bytes)",
            manifest::hex(&sha),
            hashing.len,
            manifest::hex(&s.sha256),
            s.compressed_len
        )));
    }
    Ok(())
}

/// Decompressed bytes not yet checked.
#[derive(Default)]
struct Stream {
    buf: Vec<u8>,
    /// Where the unchecked bytes start in `buf`.
    at: usize,
    /// Offset in the segment of `buf[0]`.
    base: u64,
    eof: bool,
}

impl Stream {
    /// Makes at least `want` unchecked bytes available unless the stream
    /// ends first; returns how many there are.
    fn fill(&mut self, r: &mut impl Read, want: usize) -> std::io::Result<usize> {
        while self.buf.len() - self.at < want && !self.eof {
            if self.at > 0 {
                self.buf.drain(..self.at);
                self.base += self.at as u64;
                self.at = 0;
            }
            let have = self.buf.len();
            let grow = CHUNK.max(want - have);
            self.buf.resize(have + grow, 0);
            let mut filled = have;
            while filled < self.buf.len() {
                let n = r.read(&mut self.buf[filled..])?;
                if n == 0 {
                    self.eof = true;
                    break;
                }
                filled += n;
            }
            self.buf.truncate(filled);
        }
        Ok(self.buf.len() - self.at)
    }

    fn offset(&self) -> u64 {
        self.base + self.at as u64
    }
}

/// Reads the decompressed segment from `r` and checks its header, every
/// record's frame and CRC, the positions and the chain.
fn check_records(
    s: &ArchivedSegment,
    path: &Path,
    r: &mut impl Read,
    stream: &mut Stream,
) -> Result<()> {
    check_records_to(s, path, r, stream, None).map(|_| ())
}

/// [`check_records`], stopping after the record at `stop` (when given) and
/// returning its chain value.
fn check_records_to(
    s: &ArchivedSegment,
    path: &Path,
    r: &mut impl Read,
    stream: &mut Stream,
    stop: Option<Position>,
) -> Result<Option<Chain>> {
    let damaged = |reason: String| Error::ArchiveDamaged {
        path: path.to_path_buf(),
        reason,
    };
    let read_err = |e: std::io::Error| damaged(format!("does not decompress: {e}"));
    stream.fill(r, HEADER_LEN).map_err(read_err)?;
    let header = SegmentHeader::decode(&stream.buf[stream.at..])
        .map_err(|reason| damaged(format!("segment header: {reason}")))?;
    let mut chain: Chain = s.seed;
    if header.first_position.0 != s.first || header.chain_seed != chain {
        return Err(Error::ChainBroken {
            position: Position(s.first),
            segment: path.to_path_buf(),
            offset: 0,
        });
    }
    stream.at += HEADER_LEN;
    let mut position = Position(s.first);
    let end = s.end();
    while position < end {
        if stream.fill(r, GROUP_HEADER_LEN).map_err(read_err)? >= GROUP_HEADER_LEN
            && format::is_group_header(&stream.buf[stream.at..])
        {
            stream.at += GROUP_HEADER_LEN;
        }
        stream.fill(r, FRAME_LEN).map_err(read_err)?;
        let want = format::peek_body_len(&stream.buf[stream.at..])
            .map_or(FRAME_LEN, |b| FRAME_LEN + b.min(MAX_BODY_LEN));
        stream.fill(r, want).map_err(read_err)?;
        let record = match format::decode_record(&stream.buf[stream.at..], MAX_BODY_LEN) {
            Ok(record) => record,
            Err(FrameError::Incomplete) => {
                return Err(Error::Corruption {
                    segment: path.to_path_buf(),
                    offset: stream.offset(),
                    reason: format!(
                        "the archived segment ends at position {position}, before the {} records the manifest records",
                        s.count
                    ),
                });
            }
            Err(FrameError::Damaged(reason)) => {
                return Err(Error::Corruption {
                    segment: path.to_path_buf(),
                    offset: stream.offset(),
                    reason,
                });
            }
        };
        if record.position != position || format::chain_of(&chain, record.hashed) != record.chain()
        {
            return Err(Error::ChainBroken {
                position,
                segment: path.to_path_buf(),
                offset: stream.offset(),
            });
        }
        chain = record.chain();
        if stop == Some(position) {
            return Ok(Some(chain));
        }
        stream.at += record.frame_len;
        position = position.next();
    }
    if stream.fill(r, 1).map_err(read_err)? > 0 || stream.offset() != s.segment_len {
        return Err(damaged(format!(
            "it holds more than the {} records ({} bytes) the manifest records",
            s.count, s.segment_len
        )));
    }
    if chain != s.last_chain {
        return Err(Error::ChainBroken {
            position: Position(end.0.saturating_sub(1)),
            segment: path.to_path_buf(),
            offset: stream.offset(),
        });
    }
    Ok(None)
}

/// The chain value recorded with the archived event at `position`, read
/// from its segment in the archive directory `dir` (every record before it
/// in that segment checked: CRC, position, chain from the seed the
/// manifest records); `None` when `position` is not archived.
pub(crate) fn chain_in_archive(
    shared: &Shared,
    dir: &Path,
    position: Position,
) -> Result<Option<Chain>> {
    let segment = {
        let index = shared.index.read().expect("index lock");
        index.archive.manifest.segment_of(position).cloned()
    };
    let Some(s) = segment else {
        return Ok(None);
    };
    let path = dir.join(&s.file);
    let file = File::open(&path).map_err(|e| Error::ArchiveDamaged {
        path: path.clone(),
        reason: format!("cannot open it: {e}"),
    })?;
    let mut dec = zstd::stream::Decoder::new(file).map_err(|e| Error::ArchiveDamaged {
        path: path.clone(),
        reason: format!("does not decompress: {e}"),
    })?;
    check_records_to(&s, &path, &mut dec, &mut Stream::default(), Some(position))
}

/// Takes into account an archive run beside this process (`serve` holds the
/// log while `neonhub log archive` moves its old segments): when the live
/// manifest changed since last seen, the segments it now lists leave this
/// handle's index (their reads answer [`Error::Archived`]) and their open
/// file handles are closed, so that their disk space is freed. Costs one
/// `stat` when nothing changed.
pub(crate) fn catch_up(shared: &Shared) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = shared.dir.join(LIVE_MANIFEST);
    let stamp = std::fs::metadata(&path).ok().map(|m| {
        (
            m.len(),
            m.modified().unwrap_or(std::time::UNIX_EPOCH),
            m.ino(),
        )
    });
    let mut seen = shared.archive_seen.lock().expect("archive stamp lock");
    if stamp.is_none() || *seen == stamp {
        return Ok(());
    }
    let end = Manifest::read(shared.fs.as_ref(), &path, true)?.map_or(Position::START, |m| m.end());
    if end > shared.index.read().expect("index lock").archive.end() {
        let archive = recovery::load_archive(shared.fs.as_ref(), &shared.dir)?;
        let mut index = shared.index.write().expect("index lock");
        let last = index.segments.len().saturating_sub(1);
        let gone = index.segments[..last]
            .iter()
            .take_while(|s| s.first < end)
            .count();
        for seg in index.segments.drain(..gone) {
            shared.handles.forget(&seg.path);
        }
        index.archive = archive;
        tracing::info!(
            first_live = %end,
            "segments were archived beside this process; their events now read as archived"
        );
    }
    *seen = stamp;
    Ok(())
}
