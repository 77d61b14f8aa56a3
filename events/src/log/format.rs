//! The on-disk format of the embedded log: segment headers and record frames.
//!
//! A log is a directory of segment files named `seg-<first position, 20
//! digits>.log`, plus a `LOCK` file. Integers are little-endian. After
//! `neonhub log archive`, the first segments are elsewhere and `ARCHIVE.json`
//! (`manifest.rs`) says where the log begins and with which chain value.
//!
//! ```text
//! segment header (64 bytes)
//! +0   magic          8 bytes  "NHLOGSEG"
//! +8   version        u32      FORMAT_VERSION (3: grouped records; 2, still
//!                              read: records back to back; 1 chained with blake3)
//! +12  reserved       u32      0
//! +16  first_position u64      position of the segment's first record
//! +24  chain_seed     32 bytes chain value before the first record (the last
//!                              record's chain of the previous segment; zeros
//!                              for the first segment)
//! +56  header_crc     u32      crc32c of bytes 0..56
//! +60  padding        4 bytes  0
//!
//! group frame (version 3): what one group commit wrote with one write,
//! back to back after the segment header
//! +0   magic          4 bytes  "NHgr" (as a record length, past the limit)
//! +4   body_len       u32      bytes of records after this header
//! +8   first_position u64      position of the group's first record
//! +16  count          u32      records in the group (whole append batches)
//! +20  synced_end     u32      segment length known durable when the group
//!                              was written (its own offset when durable)
//! +24  header_crc     u32      crc32c of bytes 0..24
//! +28  reserved       u32      0 (anything else is damage)
//! +32  records        body_len bytes
//!
//! record frame (8 + body_len bytes), back to back inside a group (version 3)
//! or after the segment header (version 2)
//! +0   body_len       u32      length of the body
//! +4   body_crc       u32      crc32c of the body
//! body:
//! +0   position       u64      global position (contiguous over the log)
//! +8   revision       u64      revision within its stream
//! +16  recorded_at    u64      microseconds since the Unix epoch
//! +24  event_id       16 bytes UUID
//! +40  flags          u8       bit 0: last record of its append batch
//!                              bit 1: correlation id present
//!                              bit 2: causation id present
//! +41  stream_len     u8       1..=255
//! +42  type_len       u16
//! +44  payload_len    u32
//! +48  correlation    16 bytes if flag bit 1
//! +..  causation      16 bytes if flag bit 2
//! +..  stream         stream_len bytes (ASCII)
//! +..  event_type     type_len bytes (UTF-8)
//! +..  payload        payload_len bytes
//! +..  chain          32 bytes SHA-256(previous chain || body without chain)
//! ```
//!
//! The CRC finds torn and rotted records; the hash chain finds records that
//! were altered, inserted or removed even with a recomputed CRC. The group
//! frame tells a torn write from damage: only a group that no later group
//! saw synced (`synced_end` past its offset) can be torn by a power loss, so
//! recovery cuts a bad group only then (keeping the bytes in a quarantine
//! file) and calls anything else corruption. An append batch is never split
//! between groups; in version 2 segments recovery drops records after the
//! last record flagged as the end of a batch.

use uuid::Uuid;

use crate::ids::{EventId, Position, Revision, StreamId, Timestamp};
use crate::store::{EventData, Metadata, RecordedEvent};

/// The first bytes of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"NHLOGSEG";
/// The segment format this build writes: records in group frames.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The previous format, still read: records back to back, no group frames.
pub(crate) const FORMAT_VERSION_UNGROUPED: u32 = 2;
/// Size of a group frame's header.
pub(crate) const GROUP_HEADER_LEN: usize = 32;
/// The first bytes of a group header. As a record's `body_len` it would be
/// past [`MAX_BODY_LEN`], so a group header never reads as a record.
pub(crate) const GROUP_MAGIC: [u8; 4] = *b"NHgr";
/// Size of the segment header.
pub(crate) const HEADER_LEN: usize = 64;
/// Size of a record's frame header (length + CRC).
pub(crate) const FRAME_LEN: usize = 8;
/// Size of the fixed part of a record body.
pub(crate) const FIXED_BODY_LEN: usize = 48;
/// Size of a chain value.
pub(crate) const CHAIN_LEN: usize = 32;
/// Largest body a reader accepts (the writer's limit is lower).
pub(crate) const MAX_BODY_LEN: usize = 256 << 20;
/// Smallest possible body: fixed part, a 1-byte stream name, the chain.
pub(crate) const MIN_BODY_LEN: usize = FIXED_BODY_LEN + 1 + CHAIN_LEN;

/// Flag: the record ends its append batch.
pub(crate) const FLAG_BATCH_END: u8 = 1;
const FLAG_CORRELATION: u8 = 1 << 1;
const FLAG_CAUSATION: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_BATCH_END | FLAG_CORRELATION | FLAG_CAUSATION;

/// A chain value: SHA-256 of the previous chain value and a record body
/// (SHA-256 rather than blake3: with the SHA extensions it hashes a
/// 400-byte record 2.3x faster here, and the writer hashes every record).
pub(crate) type Chain = [u8; CHAIN_LEN];

/// The chain value before the first record of a log.
pub(crate) const GENESIS_CHAIN: Chain = [0; CHAIN_LEN];

/// The file name of the segment whose first record is at `first`.
pub(crate) fn segment_file_name(first: Position) -> String {
    format!("seg-{:020}.log", first.0)
}

/// The first position encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<Option<Position>> {
    let middle = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    // Named like a segment: `Some(None)` when the number is malformed.
    Some(
        (middle.len() == 20 && middle.bytes().all(|b| b.is_ascii_digit()))
            .then(|| middle.parse().ok().map(Position))
            .flatten(),
    )
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) first_position: Position,
    pub(crate) chain_seed: Chain,
    /// [`FORMAT_VERSION`] or [`FORMAT_VERSION_UNGROUPED`].
    pub(crate) version: u32,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[16..24].copy_from_slice(&self.first_position.0.to_le_bytes());
        h[24..56].copy_from_slice(&self.chain_seed);
        let crc = crc32c::crc32c(&h[0..56]);
        h[56..60].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header, saying what is wrong when it is not one.
    pub(crate) fn decode(h: &[u8]) -> Result<Self, String> {
        if h.len() < HEADER_LEN {
            return Err(format!(
                "not a neonhub log segment: {} bytes, shorter than the {HEADER_LEN}-byte header",
                h.len()
            ));
        }
        if h[0..8] != MAGIC {
            return Err("not a neonhub log segment (bad magic bytes)".to_string());
        }
        let version = u32_at(h, 8);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_UNGROUPED {
            return Err(format!(
                "segment format version {version} is not supported; this build reads versions {FORMAT_VERSION_UNGROUPED} and {FORMAT_VERSION} (run a neonhub that does)"
            ));
        }
        if crc32c::crc32c(&h[0..56]) != u32_at(h, 56) {
            return Err("segment header checksum mismatch".to_string());
        }
        let mut chain_seed = GENESIS_CHAIN;
        chain_seed.copy_from_slice(&h[24..56]);
        Ok(Self {
            first_position: Position(u64_at(h, 16)),
            chain_seed,
            version,
        })
    }
}

/// A decoded group header: what one group commit wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupHeader {
    /// Bytes of records after the header.
    pub(crate) body_len: u32,
    /// Position of the group's first record.
    pub(crate) first_position: Position,
    /// Number of records.
    pub(crate) count: u32,
    /// How far the segment was durable (synced) when the group was written:
    /// every byte before it had been acknowledged as written to disk.
    pub(crate) synced_end: u32,
}

impl GroupHeader {
    /// Writes the header into `h` (its first [`GROUP_HEADER_LEN`] bytes).
    pub(crate) fn encode_into(&self, h: &mut [u8]) {
        h[0..4].copy_from_slice(&GROUP_MAGIC);
        h[4..8].copy_from_slice(&self.body_len.to_le_bytes());
        h[8..16].copy_from_slice(&self.first_position.0.to_le_bytes());
        h[16..20].copy_from_slice(&self.count.to_le_bytes());
        h[20..24].copy_from_slice(&self.synced_end.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        h[28..32].copy_from_slice(&[0; 4]);
    }

    /// Decodes the header at the start of `h`, `None` unless its magic and
    /// checksum hold.
    pub(crate) fn decode(h: &[u8]) -> Option<Self> {
        if h.len() < GROUP_HEADER_LEN
            || h[0..4] != GROUP_MAGIC
            || crc32c::crc32c(&h[0..24]) != u32_at(h, 24)
            || h[28..32] != [0; 4]
        {
            return None;
        }
        Some(Self {
            body_len: u32_at(h, 4),
            first_position: Position(u64_at(h, 8)),
            count: u32_at(h, 16),
            synced_end: u32_at(h, 20),
        })
    }
}

/// Whether `bytes` start with a group header's magic.
#[inline]
pub(crate) fn is_group_header(bytes: &[u8]) -> bool {
    bytes.len() >= GROUP_HEADER_LEN && bytes[0..4] == GROUP_MAGIC
}

/// Where a record goes: the fields the writer assigns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub(crate) position: Position,
    pub(crate) revision: Revision,
    pub(crate) recorded_at: Timestamp,
    /// Whether the record ends its append batch.
    pub(crate) batch_end: bool,
}

/// Appends the frame of one record to `buf` and returns its chain value.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    event: &EventData,
    stream: &StreamId,
    at: Placement,
    prev_chain: &Chain,
) -> Chain {
    let Placement {
        position,
        revision,
        recorded_at,
        batch_end,
    } = at;
    let Metadata {
        correlation_id,
        causation_id,
    } = event.metadata;
    let mut flags = 0u8;
    if batch_end {
        flags |= FLAG_BATCH_END;
    }
    if correlation_id.is_some() {
        flags |= FLAG_CORRELATION;
    }
    if causation_id.is_some() {
        flags |= FLAG_CAUSATION;
    }
    let body_len = encoded_body_len(event, stream);
    let start = buf.len();
    buf.reserve(FRAME_LEN + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]); // CRC, filled below
    let body_start = buf.len();
    buf.extend_from_slice(&position.0.to_le_bytes());
    buf.extend_from_slice(&revision.0.to_le_bytes());
    buf.extend_from_slice(&recorded_at.0.to_le_bytes());
    buf.extend_from_slice(event.id.as_uuid().as_bytes());
    buf.push(flags);
    buf.push(stream.as_str().len() as u8);
    buf.extend_from_slice(&(event.event_type.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(event.payload.len() as u32).to_le_bytes());
    if let Some(c) = correlation_id {
        buf.extend_from_slice(c.as_bytes());
    }
    if let Some(c) = causation_id {
        buf.extend_from_slice(c.as_bytes());
    }
    buf.extend_from_slice(stream.as_str().as_bytes());
    buf.extend_from_slice(event.event_type.as_bytes());
    buf.extend_from_slice(&event.payload);
    let chain = chain_of(prev_chain, &buf[body_start..]);
    buf.extend_from_slice(&chain);
    let crc = crc32c::crc32c(&buf[body_start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(buf.len() - start, FRAME_LEN + body_len);
    chain
}

/// The size of a record body for `event` in `stream`.
pub(crate) fn encoded_body_len(event: &EventData, stream: &StreamId) -> usize {
    FIXED_BODY_LEN
        + 16 * usize::from(event.metadata.correlation_id.is_some())
        + 16 * usize::from(event.metadata.causation_id.is_some())
        + stream.as_str().len()
        + event.event_type.len()
        + event.payload.len()
        + CHAIN_LEN
}

/// The chain value following `prev` for a record whose body (without its
/// chain) is `body`.
pub(crate) fn chain_of(prev: &Chain, body: &[u8]) -> Chain {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// Why bytes at an offset are not a valid record frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes remain than the frame needs (a torn tail if at the end).
    Incomplete,
    /// The frame is complete but damaged.
    Damaged(String),
}

/// The parsed fields of a record frame, borrowing from the buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordView<'a> {
    pub(crate) position: Position,
    pub(crate) revision: Revision,
    pub(crate) recorded_at: Timestamp,
    pub(crate) event_id: Uuid,
    pub(crate) flags: u8,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) stream: &'a [u8],
    pub(crate) event_type: &'a [u8],
    pub(crate) payload: &'a [u8],
    /// The body without its chain (what the chain hashes).
    pub(crate) hashed: &'a [u8],
    pub(crate) chain: &'a [u8],
    /// Frame length (header + body).
    pub(crate) frame_len: usize,
}

impl RecordView<'_> {
    pub(crate) fn is_batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    pub(crate) fn chain(&self) -> Chain {
        let mut c = GENESIS_CHAIN;
        c.copy_from_slice(self.chain);
        c
    }

    /// An owned event. The stream name and type were checked when written
    /// and are covered by the CRC.
    pub(crate) fn to_recorded(self) -> RecordedEvent {
        RecordedEvent {
            id: EventId::from_uuid(self.event_id),
            stream: StreamId::from_stored(String::from_utf8_lossy(self.stream).into_owned()),
            revision: self.revision,
            position: self.position,
            recorded_at: self.recorded_at,
            event_type: String::from_utf8_lossy(self.event_type).into_owned(),
            metadata: Metadata {
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
            },
            payload: self.payload.to_vec(),
        }
    }
}

/// Reads the body length a frame at the start of `bytes` claims, if the
/// frame header is there.
pub(crate) fn peek_body_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= FRAME_LEN).then(|| u32_at(bytes, 0) as usize)
}

/// Parses and checks (length, CRC, layout) the frame at the start of `bytes`.
pub(crate) fn decode_record(bytes: &[u8], max_body: usize) -> Result<RecordView<'_>, FrameError> {
    let body_len = peek_body_len(bytes).ok_or(FrameError::Incomplete)?;
    if !(MIN_BODY_LEN..=max_body).contains(&body_len) {
        // A length past the end is more likely a torn write than damage.
        return Err(if body_len > bytes.len() {
            FrameError::Incomplete
        } else {
            FrameError::Damaged(format!("record length {body_len} out of range"))
        });
    }
    if bytes.len() < FRAME_LEN + body_len {
        return Err(FrameError::Incomplete);
    }
    let body = &bytes[FRAME_LEN..FRAME_LEN + body_len];
    if crc32c::crc32c(body) != u32_at(bytes, 4) {
        return Err(FrameError::Damaged("record checksum mismatch".to_string()));
    }
    let flags = body[40];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::Damaged(format!(
            "unknown record flags {flags:#x}"
        )));
    }
    let stream_len = usize::from(body[41]);
    let type_len = usize::from(u16::from_le_bytes([body[42], body[43]]));
    let payload_len = u32_at(body, 44) as usize;
    let mut at = FIXED_BODY_LEN;
    let mut uuid_field = |present: bool| {
        present.then(|| {
            let u = Uuid::from_slice(&body[at..at + 16]).expect("16 bytes");
            at += 16;
            u
        })
    };
    let has_corr = flags & FLAG_CORRELATION != 0;
    let has_caus = flags & FLAG_CAUSATION != 0;
    let expected_len = FIXED_BODY_LEN
        + 16 * (usize::from(has_corr) + usize::from(has_caus))
        + stream_len
        + type_len
        + payload_len
        + CHAIN_LEN;
    if expected_len != body_len || stream_len == 0 {
        return Err(FrameError::Damaged(
            "record fields do not add up to its length".to_string(),
        ));
    }
    let correlation_id = uuid_field(has_corr);
    let causation_id = uuid_field(has_caus);
    let stream = &body[at..at + stream_len];
    at += stream_len;
    let event_type = &body[at..at + type_len];
    at += type_len;
    let payload = &body[at..at + payload_len];
    at += payload_len;
    Ok(RecordView {
        position: Position(u64_at(body, 0)),
        revision: Revision(u64_at(body, 8)),
        recorded_at: Timestamp(u64_at(body, 16)),
        event_id: Uuid::from_slice(&body[24..40]).expect("16 bytes"),
        flags,
        correlation_id,
        causation_id,
        stream,
        event_type,
        payload,
        hashed: &body[..at],
        chain: &body[at..],
        frame_len: FRAME_LEN + body_len,
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &[u8]) -> EventData {
        EventData {
            id: EventId::new(),
            event_type: "run.started.v1".into(),
            metadata: Metadata {
                correlation_id: Some(Uuid::now_v7()),
                causation_id: None,
            },
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let stream = StreamId::new("run-1").unwrap();
        let e = event(b"hello");
        let mut buf = Vec::new();
        let chain = encode_record(
            &mut buf,
            &e,
            &stream,
            Placement {
                position: Position(9),
                revision: Revision(2),
                recorded_at: Timestamp(77),
                batch_end: true,
            },
            &GENESIS_CHAIN,
        );
        assert_eq!(buf.len(), FRAME_LEN + encoded_body_len(&e, &stream));
        let v = decode_record(&buf, 1 << 20).unwrap();
        assert_eq!(v.frame_len, buf.len());
        assert_eq!(v.chain(), chain);
        assert_eq!(chain_of(&GENESIS_CHAIN, v.hashed), chain);
        assert!(v.is_batch_end());
        let r = v.to_recorded();
        assert_eq!(r.position, Position(9));
        assert_eq!(r.revision, Revision(2));
        assert_eq!(r.recorded_at, Timestamp(77));
        assert_eq!(r.id, e.id);
        assert_eq!(r.stream, stream);
        assert_eq!(r.event_type, e.event_type);
        assert_eq!(r.metadata, e.metadata);
        assert_eq!(r.payload, b"hello");
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flip_is_damage() {
        let stream = StreamId::new("s").unwrap();
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            &event(b"payload"),
            &stream,
            Placement {
                position: Position(0),
                revision: Revision(0),
                recorded_at: Timestamp(1),
                batch_end: false,
            },
            &GENESIS_CHAIN,
        );
        for cut in 0..buf.len() {
            assert!(
                decode_record(&buf[..cut], 1 << 20).is_err(),
                "a record cut at {cut} decoded"
            );
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                decode_record(&bad, 1 << 20).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    #[test]
    fn headers_round_trip_and_reject_strangers() {
        let h = SegmentHeader {
            first_position: Position(1234),
            chain_seed: [7; 32],
            version: FORMAT_VERSION,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()).unwrap(), h);
        let mut other = h.encode();
        other[8] = 9;
        assert!(
            SegmentHeader::decode(&other)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(
            SegmentHeader::decode(b"hello world")
                .unwrap_err()
                .contains("not a neonhub")
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(Position(42))),
            Some(Some(Position(42)))
        );
        assert_eq!(parse_segment_file_name("seg-x.log"), Some(None));
        assert_eq!(parse_segment_file_name("LOCK"), None);
    }
}
