//! What the fuzz targets run, shared with the corpus replay test
//! (`events/tests/fuzz_corpus.rs`) so that CI runs every committed corpus
//! file through the same code on stable, and the seed corpus generator.

use std::collections::BTreeSet;
use std::path::Path;

use neonhub_events::{
    Codec, Direction, EmbeddedLog, ErrorKind, EventData, EventStore, ExpectedRevision,
    LeaseRenewed, LogOptions, Metadata, NodeId, Position, ReadFrom, RecordedEvent, Revision,
    RunError, RunEvent, RunFailed, RunId, RunKind, RunStarted, RunSucceeded, StepOutcome,
    StepResolved, StreamId, Timestamp, encode_payload, event_types, from_msgpack,
};

/// The name of the first segment of a log (`seg-<20 digits>.log`).
const FIRST_SEGMENT: &str = "seg-00000000000000000000.log";
/// Size of a segment header; see `events/src/log/format.rs`.
const HEADER_LEN: usize = 64;
/// Events read per `read_all` call.
const READ_BATCH: usize = 64;
/// Streams read one by one, at most, per log.
const STREAMS_READ: usize = 8;

/// How the input of [`segment_recovery`] becomes segment files: its first
/// byte modulo 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentMode {
    /// The rest is the first segment, byte for byte.
    Raw = 0,
    /// A valid version 3 segment header (first position 0, zero chain seed),
    /// then the rest.
    Version3Header = 1,
    /// A valid version 2 (ungrouped) segment header, then the rest.
    Version2Header = 2,
    /// Two segments: a little-endian `u16` splits the rest in two, each
    /// named after the first position in its header (bytes 16..24), so that
    /// real segments keep their names.
    TwoSegments = 3,
}

/// The segment files (name, bytes) that the fuzz input `data` stands for.
pub fn segment_files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some((&mode, rest)) = data.split_first() else {
        return vec![(FIRST_SEGMENT.to_owned(), Vec::new())];
    };
    match mode % 4 {
        0 => vec![(FIRST_SEGMENT.to_owned(), rest.to_vec())],
        1 | 2 => {
            let version = if mode % 4 == 1 { 3 } else { 2 };
            let mut file = segment_header(version, 0).to_vec();
            file.extend_from_slice(rest);
            vec![(FIRST_SEGMENT.to_owned(), file)]
        }
        _ => {
            let (split, rest) = match rest {
                [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
                _ => (0, rest),
            };
            let (first, second) = rest.split_at(split.min(rest.len()));
            vec![
                (segment_name(first, 0), first.to_vec()),
                (segment_name(second, 1), second.to_vec()),
            ]
        }
    }
}

/// The file name of a segment holding `bytes`: after the first position in
/// its header, or `otherwise` when it is too short to have one.
fn segment_name(bytes: &[u8], otherwise: u64) -> String {
    let first = bytes.get(16..24).map_or(otherwise, |b| {
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    });
    format!("seg-{first:020}.log")
}

/// A valid segment header of `version` for a segment starting at `first`
/// with the zero chain seed (the layout drawn in `events/src/log/format.rs`).
pub fn segment_header(version: u32, first: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(b"NHLOGSEG");
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..56]);
    h[56..60].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The `segment_recovery` target: writes the segment files `data` stands for
/// (see [`SegmentMode`]) into a temporary directory and opens the log
/// read-only, then for writing (appending one event and reopening when that
/// works), then repairs it when it refused to open. Every `Err` is fine; a
/// panic, a hang or a huge allocation is a bug.
///
/// # Panics
/// On a bug: a log that opened for writing and took an append must reopen
/// with that event in it.
pub fn segment_recovery(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, bytes) in segment_files(data) {
        std::fs::write(dir.path().join(name), bytes).expect("write a segment");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    if let Ok(log) = EmbeddedLog::open_read_only(dir.path(), LogOptions::default()) {
        read_everything(&rt, &log);
    }
    match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Ok(log) => {
            read_everything(&rt, &log);
            append_and_reopen(&rt, &log, dir.path());
        }
        Err(_) => {
            if EmbeddedLog::repair(dir.path()).is_ok()
                && let Ok(log) = EmbeddedLog::open(dir.path(), LogOptions::default())
            {
                read_everything(&rt, &log);
            }
        }
    }
}

/// Reads every event of `log` in global order and per stream, decodes each,
/// and verifies the log.
fn read_everything(rt: &tokio::runtime::Runtime, log: &EmbeddedLog) {
    let codec = Codec::new();
    let _ = log.verify();
    let _ = log.torn_tail();
    let _ = log.stream_count();
    rt.block_on(async {
        let Ok(head) = log.head().await else {
            return;
        };
        let mut streams = BTreeSet::new();
        let mut from = Position::START;
        while let Ok(events) = log.read_all(from, READ_BATCH).await {
            let Some(last) = events.last() else {
                break;
            };
            assert!(last.position >= from, "read_all went backwards");
            from = last.position.next();
            for event in &events {
                let _ = codec.decode(event);
                let _ = LeaseRenewed::decode(event);
                streams.insert(event.stream.clone());
            }
        }
        for stream in streams.iter().take(STREAMS_READ) {
            let _ = log
                .read_stream(stream, Direction::Forwards, ReadFrom::Start, READ_BATCH)
                .await;
            let _ = log
                .read_stream(stream, Direction::Backwards, ReadFrom::End, READ_BATCH)
                .await;
            let _ = log
                .read_stream(
                    stream,
                    Direction::Forwards,
                    ReadFrom::Revision(Revision(1)),
                    READ_BATCH,
                )
                .await;
        }
        let _ = log.chain_at(Position::START);
        let _ = log.chain_at(Position(head.0.saturating_sub(1)));
        let _ = log.chain_at(head);
    });
}

/// Appends one event to a log opened for writing, closes it and checks that
/// it reopens with the event in it.
fn append_and_reopen(rt: &tokio::runtime::Runtime, log: &EmbeddedLog, dir: &Path) {
    let stream = StreamId::new("fuzz-append").expect("stream name");
    let event = EventData {
        id: neonhub_events::EventId::new(),
        event_type: "fuzz.appended.v1".to_owned(),
        metadata: Metadata::default(),
        payload: b"appended".to_vec(),
    };
    let appended = rt.block_on(log.append(&stream, ExpectedRevision::Any, vec![event]));
    log.close();
    let Ok(appended) = appended else {
        return;
    };
    let reopened = EmbeddedLog::open_read_only(dir, LogOptions::default())
        .expect("a log that took an append reopens");
    let events = rt
        .block_on(reopened.read_all(appended.last_position, 1))
        .expect("the appended event reads back");
    assert_eq!(
        events.first().map(|e| (e.position, e.payload.as_slice())),
        Some((appended.last_position, &b"appended"[..])),
        "the appended event is in the reopened log"
    );
}

/// Every event type name the codec or the lease decoder knows, plus one it
/// does not.
const EVENT_TYPES: [&str; 6] = [
    event_types::RUN_STARTED,
    event_types::RUN_SUCCEEDED,
    event_types::RUN_FAILED,
    event_types::STEP_RESOLVED,
    event_types::LEASE_RENEWED,
    "fuzz.unknown.v1",
];

/// The `event_decoding` target: `data` as the payload of a recorded event of
/// every event type, decoded by the [`Codec`] and [`LeaseRenewed::decode`],
/// and as plain MessagePack. Every `Err` is fine; what decodes must encode
/// and decode back to itself.
///
/// # Panics
/// On a bug: a decoded event that does not survive re-encoding.
pub fn event_decoding(data: &[u8]) {
    let codec = Codec::new();
    for event_type in EVENT_TYPES {
        let recorded = RecordedEvent {
            id: neonhub_events::EventId::new(),
            stream: StreamId::new("fuzz").expect("stream name"),
            revision: Revision(0),
            position: Position(7),
            recorded_at: Timestamp(0),
            event_type: event_type.to_owned(),
            metadata: Metadata::default(),
            payload: data.to_vec(),
        };
        if let Ok(event) = codec.decode(&recorded) {
            assert_eq!(event.event_type(), event_type);
            let payload = encode_payload(&event).expect("a decoded event encodes");
            let again = codec
                .decode_payload(event_type, &payload, recorded.position)
                .expect("a re-encoded event decodes");
            assert_eq!(
                again, event,
                "decode(encode(decode(bytes))) == decode(bytes)"
            );
        }
        if let Ok(lease) = LeaseRenewed::decode(&recorded) {
            let mut again = recorded.clone();
            again.payload = lease.encode().expect("a decoded lease encodes").payload;
            assert_eq!(
                LeaseRenewed::decode(&again).expect("re-encoded lease"),
                lease
            );
        }
    }
    let _ = from_msgpack::<serde_json::Value>(data);
    let _ = from_msgpack::<RunEvent>(data);
    let _ = rmp_serde::from_slice::<rmp_serde::Raw>(data);
}

/// Real payloads, one or more per event type: the `event_decoding` seeds.
pub fn payload_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = sample_events()
        .iter()
        .map(|e| encode_payload(e).expect("encode"))
        .collect();
    let lease = LeaseRenewed {
        node: NodeId::new("node-a").expect("node id"),
        lease_millis: 10_000,
        renewed_at: Timestamp(1_700_000_000_000_000),
    };
    seeds.push(lease.encode().expect("encode").payload);
    seeds
}

/// One event of each kind, with nested JSON, options set and unset; the
/// same every time.
pub fn sample_events() -> Vec<RunEvent> {
    let run_id: RunId =
        serde_json::from_value(serde_json::json!("0190f5e2-7c41-7a3b-8d2e-5f6a7b8c9d0e"))
            .expect("a run id");
    let at = Timestamp(1_700_000_000_000_000);
    vec![
        RunEvent::Started(RunStarted {
            run_id,
            kind: RunKind::Agent,
            target: "echo".into(),
            operation: "run".into(),
            intent: Some("say hello".into()),
            input: serde_json::json!({"text": "hi", "n": [1, 2.5, -3], "deep": {"x": null}}),
            attempt: 1,
            parent_run_id: None,
            correlation_id: *run_id.step("correlation").as_uuid(),
            started_at: at,
            request_digest: Some("ab".repeat(32)),
            step: None,
            resumed: false,
            node: Some(NodeId::new("node-a").expect("node id")),
            paused_micros: 0,
        }),
        RunEvent::Started(RunStarted {
            run_id: run_id.step("send"),
            kind: RunKind::Connector,
            target: "slack".into(),
            operation: "post_message".into(),
            intent: None,
            input: serde_json::json!("plain"),
            attempt: 3,
            parent_run_id: Some(run_id),
            correlation_id: *run_id.as_uuid(),
            started_at: at,
            request_digest: None,
            step: Some("send".into()),
            resumed: true,
            node: None,
            paused_micros: 1234,
        }),
        RunEvent::Succeeded(RunSucceeded {
            run_id,
            attempt: 1,
            output: serde_json::json!({"ok": true, "items": [{"id": 1}, {"id": 2}]}),
            duration_micros: 1500,
            finished_at: at,
        }),
        RunEvent::Failed(RunFailed {
            run_id,
            attempt: 2,
            error: RunError::new(ErrorKind::Timeout, "took too long"),
            will_retry: true,
            retry_at: None,
            duration_micros: 30_000_000,
            finished_at: at,
        }),
        RunEvent::StepResolved(StepResolved {
            run_id: run_id.step("send"),
            step: "send".into(),
            outcome: StepOutcome::NotSent,
            decided_by: "operator".into(),
            reason: Some("vendor has no record".into()),
            decided_at: at,
        }),
    ]
}

/// Writes a small real log into `dir` with the public API: `rounds` times a
/// few appends of one and several events to a few streams, in segments of
/// `segment_size` bytes. Returns its segment files (name, bytes), oldest first.
pub fn write_sample_log(dir: &Path, segment_size: u64, rounds: usize) -> Vec<(String, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let log = EmbeddedLog::open(dir, LogOptions::default().with_segment_size(segment_size))
        .expect("open a new log");
    let codec = Codec::new();
    let events = sample_events();
    rt.block_on(async {
        for (i, event) in events
            .iter()
            .cycle()
            .take(events.len() * rounds)
            .enumerate()
        {
            let stream = event.run_id().stream();
            let batch: Vec<EventData> = (0..=i % 3)
                .map(|_| codec.encode(event, Metadata::default()).expect("encode"))
                .collect();
            log.append(&stream, ExpectedRevision::Any, batch)
                .await
                .expect("append");
        }
    });
    log.close();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read the log directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).expect("read a segment");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Seed inputs of the `segment_recovery` target, built from real segments
/// (see [`write_sample_log`]): each segment whole, its records after a
/// header the target supplies, two segments together, a truncated copy and a
/// bit-flipped copy.
pub fn segment_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let one = tempfile::tempdir().expect("temporary directory");
    let many = tempfile::tempdir().expect("temporary directory");
    let single = write_sample_log(one.path(), 1 << 20, 1);
    let split = write_sample_log(many.path(), 4096, 4);
    let first = &single[0].1;
    let with = |mode: SegmentMode, bytes: &[u8]| {
        let mut seed = vec![mode as u8];
        seed.extend_from_slice(bytes);
        seed
    };
    seeds.push(with(SegmentMode::Raw, first));
    seeds.push(with(SegmentMode::Version3Header, &first[HEADER_LEN..]));
    seeds.push(with(SegmentMode::Raw, &first[..first.len() - 37]));
    let mut flipped = first.clone();
    let at = HEADER_LEN + (first.len() - HEADER_LEN) / 2;
    flipped[at] ^= 0x10;
    seeds.push(with(SegmentMode::Raw, &flipped));
    for pair in split.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        let mut seed = vec![SegmentMode::TwoSegments as u8];
        seed.extend_from_slice(&u16::try_from(a.len()).expect("small").to_le_bytes());
        seed.extend_from_slice(a);
        seed.extend_from_slice(b);
        seeds.push(seed);
    }
    seeds
}
