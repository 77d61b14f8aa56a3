//! The archive manifest: which sealed segments `neonhub log archive` moved
//! out of the live log, where to, and the chain values that keep the history
//! provable without them.
//!
//! Two copies are kept, the same JSON: `ARCHIVE.json` in the live log's
//! directory (what opening the log and `audit verify` read) and
//! `MANIFEST.json` in each archive directory (what travels with the
//! archived files). Both are replaced atomically (a synced `.tmp` file
//! renamed over the old one, then the directory synced).
//!
//! ```text
//! {"version": 1,
//!  "segments": [                      oldest first, contiguous from position 0
//!    {"first": 0,                     the segment's first position
//!     "count": 161234,                records in it
//!     "seed": "00..00",               chain value before its first record (hex)
//!     "last_chain": "9f..",           chain value of its last record (hex)
//!     "min_recorded_at": 1764...,     first and newest recorded_at (microseconds)
//!     "max_recorded_at": 1764...,
//!     "segment_version": 3, "segment_len": 67108123,
//!     "archive": "/abs/archive/dir",  where it went
//!     "file": "seg-00000000000000000000.log.zst",
//!     "compressed_len": 9123456,
//!     "sha256": "ab..",               of the compressed file
//!     "archived_at": 1764...}]}
//! ```
//!
//! An archived segment's index file (`seg-<first>.idx`) stays in the live
//! directory (and a copy goes to the archive): it is the stream directory of
//! what was archived, so appends still check revisions of streams begun
//! there and reading an archived stream says where its events went.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{CHAIN_LEN, Chain, GENESIS_CHAIN};
use super::io::{LogFs, OpenMode};
use crate::error::{Error, Result};
use crate::ids::{Position, Timestamp};

/// The manifest in the live log's directory.
pub(crate) const LIVE_MANIFEST: &str = "ARCHIVE.json";
/// The manifest in an archive directory.
pub(crate) const ARCHIVE_MANIFEST: &str = "MANIFEST.json";
/// The manifest format this build writes and reads.
const MANIFEST_VERSION: u32 = 1;

/// One archived segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArchivedSegment {
    pub(crate) first: u64,
    pub(crate) count: u64,
    #[serde(with = "hex_chain")]
    pub(crate) seed: Chain,
    #[serde(with = "hex_chain")]
    pub(crate) last_chain: Chain,
    pub(crate) min_recorded_at: u64,
    pub(crate) max_recorded_at: u64,
    pub(crate) segment_version: u32,
    pub(crate) segment_len: u64,
    pub(crate) archive: PathBuf,
    pub(crate) file: String,
    pub(crate) compressed_len: u64,
    #[serde(with = "hex_chain")]
    pub(crate) sha256: Chain,
    pub(crate) archived_at: u64,
}

impl ArchivedSegment {
    /// The position after its last record.
    pub(crate) fn end(&self) -> Position {
        Position(self.first + self.count)
    }
}

/// A manifest: the archived segments, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    pub(crate) segments: Vec<ArchivedSegment>,
}

impl Manifest {
    /// The position of the first event still in the live log (0 when
    /// nothing is archived).
    pub(crate) fn end(&self) -> Position {
        self.segments.last().map_or(Position::START, |s| s.end())
    }

    /// The chain value the live log continues from.
    pub(crate) fn last_chain(&self) -> Chain {
        self.segments.last().map_or(GENESIS_CHAIN, |s| s.last_chain)
    }

    /// The newest recorded_at of the archived events.
    pub(crate) fn max_recorded_at(&self) -> Timestamp {
        Timestamp(
            self.segments
                .iter()
                .map(|s| s.max_recorded_at)
                .max()
                .unwrap_or(0),
        )
    }

    /// The archived segment holding `position`, if any.
    pub(crate) fn segment_of(&self, position: Position) -> Option<&ArchivedSegment> {
        self.segments
            .iter()
            .find(|s| s.first <= position.0 && position < s.end())
    }

    /// Checks that the segments are contiguous and chain on from one to the
    /// next, from position 0 and the genesis chain value for the live log's
    /// manifest (`live`; an archive directory may hold a later stretch).
    fn check(&self, path: &Path, live: bool) -> Result<()> {
        let bad = |reason: String| Error::BadSegment {
            path: path.to_path_buf(),
            reason,
        };
        if self.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "archive manifest version {} is not supported; this build reads version {MANIFEST_VERSION}",
                self.version
            )));
        }
        let (mut next, mut chain) = match self.segments.first() {
            Some(s) if !live => (Position(s.first), s.seed),
            _ => (Position::START, GENESIS_CHAIN),
        };
        for s in &self.segments {
            if s.first != next.0 || s.seed != chain {
                return Err(bad(format!(
                    "the archived segment {} does not continue the one before it (expected position {next} and its chain value)",
                    s.file
                )));
            }
            next = s.end();
            chain = s.last_chain;
        }
        Ok(())
    }

    /// Reads the manifest at `path` (the live log's when `live`); `Ok(None)`
    /// when there is none.
    pub(crate) fn read(fs: &dyn LogFs, path: &Path, live: bool) -> Result<Option<Self>> {
        if !fs.exists(path) {
            return Ok(None);
        }
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let len = file
            .len()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::BadSegment {
            path: path.to_path_buf(),
            reason: format!("not a readable archive manifest: {e}"),
        })?;
        manifest.check(path, live)?;
        Ok(Some(manifest))
    }

    /// Writes the manifest to `path` atomically and syncs its directory.
    pub(crate) fn write(&self, fs: &dyn LogFs, path: &Path) -> Result<()> {
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            segments: self.segments.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::io("encode the archive manifest", std::io::Error::other(e)))?;
        write_atomically(fs, path, &bytes)
    }
}

/// Writes `bytes` to `path` through a synced `.tmp` file renamed over it,
/// then syncs the directory.
pub(crate) fn write_atomically(fs: &dyn LogFs, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let f = fs
        .open(&tmp, OpenMode::Create)
        .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    f.write_all_at(bytes, 0)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    drop(f);
    fs.rename(&tmp, path)
        .map_err(|e| Error::io(format!("rename {}", tmp.display()), e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

mod hex_chain {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{CHAIN_LEN, Chain};

    pub(super) fn serialize<S: Serializer>(c: &Chain, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(c))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Chain, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() != 2 * CHAIN_LEN {
            return Err(serde::de::Error::custom("a hash is 64 hex digits"));
        }
        let mut out = [0u8; CHAIN_LEN];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            out[i] = u8::from_str_radix(pair, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}
