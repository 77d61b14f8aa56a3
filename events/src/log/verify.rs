//! Verifying the whole embedded log: every record's checksum and the hash
//! chain from the first record to the head.

use std::fmt;

use super::embedded::Shared;
use super::format::{
    self, Chain, FRAME_LEN, GROUP_HEADER_LEN, HEADER_LEN, MAX_BODY_LEN, SegmentHeader,
};
use super::recovery::Window;
use crate::error::{Error, Result};
use crate::ids::{Position, RunId, StreamId};

/// What [`crate::EmbeddedLog::verify`] found in a sound log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events the log holds.
    pub events: u64,
    /// The position the next event will get.
    pub head: Position,
    /// The chain value of the last event (zeros for an empty log). Writing
    /// it down elsewhere anchors the log: no later rewrite can reproduce it.
    pub head_hash: [u8; 32],
    /// Events before the first live position that were archived
    /// (`neonhub log archive`). Without the archive they are not re-checked:
    /// the live log is proved to continue the chain value the archive
    /// manifest recorded for them.
    pub archived: u64,
}

impl VerifyReport {
    /// The head hash in lower-case hex.
    pub fn head_hash_hex(&self) -> String {
        self.head_hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyReport")
            .field("events", &self.events)
            .field("head", &self.head)
            .field("head_hash", &self.head_hash_hex())
            .field("archived", &self.archived)
            .finish()
    }
}

/// One record as [`crate::EmbeddedLog::verify_each`] shows it once its
/// checksum and its chain value held, borrowed from the bytes it was
/// checked in.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct VerifiedRecord<'a> {
    /// Its global position.
    pub position: Position,
    /// Its stream's name, as stored (UTF-8 as written).
    pub stream: &'a [u8],
    /// Its type name, as stored.
    pub event_type: &'a [u8],
    /// Its payload.
    pub payload: &'a [u8],
}

impl VerifiedRecord<'_> {
    /// The run id, when the record is in a run stream (`run-<uuid>`), as
    /// [`crate::StreamId::run_id`] gives it.
    pub fn run_id(&self) -> Option<RunId> {
        self.stream
            .strip_prefix(StreamId::RUN_PREFIX.as_bytes())
            .and_then(|rest| uuid::Uuid::try_parse_ascii(rest).ok())
            .map(RunId::from_uuid)
    }
}

/// Re-reads every acknowledged record and recomputes the chain, reading each
/// segment in chunks of a few MiB (one record at most more), showing each
/// record that holds to `visit`.
pub(crate) fn verify(
    shared: &Shared,
    visit: &mut dyn FnMut(VerifiedRecord<'_>),
) -> Result<VerifyReport> {
    // A snapshot of the acknowledged extent of each segment, and where the
    // archived events end (the live log continues their chain).
    let (segments, archived, mut chain): (Vec<_>, _, Chain) = {
        let index = shared.index.read().expect("index lock");
        let archived = index.archive.end();
        let chain = index.archive.manifest.last_chain();
        let segments = index
            .segments
            .iter()
            .map(|s| (s.first, s.path.clone(), s.end, s.count() as usize))
            .collect();
        (segments, archived, chain)
    };
    let mut position = archived;
    for (first, path, end, count) in segments {
        let mut window = Window::new(shared.handles.get(&path)?, end);
        let read_err = |e| Error::io(format!("read {}", path.display()), e);
        let bytes = window.at(0, HEADER_LEN).map_err(read_err)?;
        let header = SegmentHeader::decode(bytes).map_err(|reason| Error::BadSegment {
            path: path.to_path_buf(),
            reason,
        })?;
        if header.chain_seed != chain || header.first_position != first || first != position {
            return Err(Error::ChainBroken {
                position,
                segment: path.to_path_buf(),
                offset: 0,
            });
        }
        let mut at = HEADER_LEN as u64;
        for _ in 0..count {
            let mut bytes = window.at(at, GROUP_HEADER_LEN).map_err(read_err)?;
            if format::is_group_header(bytes) {
                at += GROUP_HEADER_LEN as u64;
                bytes = window.at(at, FRAME_LEN).map_err(read_err)?;
            }
            let want = format::peek_body_len(bytes).map_or(FRAME_LEN, |b| FRAME_LEN + b);
            let bytes = window
                .at(at, want.min(FRAME_LEN + MAX_BODY_LEN))
                .map_err(read_err)?;
            let record =
                format::decode_record(bytes, MAX_BODY_LEN).map_err(|e| Error::Corruption {
                    segment: path.to_path_buf(),
                    offset: at,
                    reason: format!("{e:?}"),
                })?;
            if record.position != position
                || format::chain_of(&chain, record.hashed) != record.chain()
            {
                return Err(Error::ChainBroken {
                    position,
                    segment: path.to_path_buf(),
                    offset: at,
                });
            }
            chain = record.chain();
            visit(VerifiedRecord {
                position,
                stream: record.stream,
                event_type: record.event_type,
                payload: record.payload,
            });
            position = position.next();
            at += record.frame_len as u64;
        }
    }
    Ok(VerifyReport {
        events: position.0,
        head: position,
        head_hash: chain,
        archived: archived.0,
    })
}
