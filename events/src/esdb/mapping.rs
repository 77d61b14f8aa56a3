//! How neonhub's envelope maps onto EventStoreDB's: positions, expected
//! revisions, event data (MessagePack payload, binary content type, our
//! metadata as JSON custom metadata) and recorded events.
//!
//! ## Positions
//! A [`Position`] is the event's `$all` commit position, doubled:
//! `Position(2 × commit)`. EventStoreDB positions are byte offsets into its
//! transaction log, so `p.next()` (= p + 1, what our callers pass to continue
//! after `p`) is not the position of any record, and a server asked to read
//! from the middle of a record misreads. Doubling keeps every position we
//! hand out even, and gives the odd number after it a meaning the server
//! understands: "just after the event at commit `c`". So `read_all(2c)`
//! reads from commit `c` (inclusive) and `read_all(2c + 1)` reads from
//! commit `c` and drops that first event. Commit positions are below 2^63
//! (they are signed 64-bit offsets on the server), so doubling never
//! overflows, and the global order is kept.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ids::{EventId, Position, Revision, StreamId, Timestamp};
use crate::store::{EventData, ExpectedRevision, Metadata, RecordedEvent};

/// EventStoreDB's default maximum size of one append request (1 MiB,
/// `--max-append-size`).
pub(crate) const DEFAULT_MAX_APPEND_SIZE: usize = 1024 * 1024;

/// Where in `$all` to start, in the server's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllFrom {
    /// The beginning of `$all`.
    Start,
    /// The event at this commit position, included.
    At(u64),
    /// Just after the event at this commit position.
    After(u64),
}

impl AllFrom {
    /// The commit position to ask the server for, if not the start.
    pub(crate) fn commit(self) -> Option<u64> {
        match self {
            AllFrom::Start => None,
            AllFrom::At(c) | AllFrom::After(c) => Some(c),
        }
    }
}

/// Our position of the event at `commit`.
pub(crate) fn position_of(commit: u64) -> Result<Position> {
    commit
        .checked_mul(2)
        .map(Position)
        .ok_or_else(|| Error::Backend {
            message: format!("commit position {commit} is out of range"),
            retryable: false,
        })
}

/// Where reading from our `position` starts on the server.
pub(crate) fn all_from(position: Position) -> AllFrom {
    match position.0 {
        0 => AllFrom::Start,
        p if p % 2 == 0 => AllFrom::At(p / 2),
        p => AllFrom::After(p / 2),
    }
}

/// The position just after the event at `commit`: what `head()` answers.
pub(crate) fn position_after(commit: u64) -> Result<Position> {
    Ok(position_of(commit)?.next())
}

/// The client's stream state for our expectation.
pub(crate) fn stream_state(expected: ExpectedRevision) -> kurrentdb::StreamState {
    match expected {
        ExpectedRevision::Any => kurrentdb::StreamState::Any,
        ExpectedRevision::NoStream => kurrentdb::StreamState::NoStream,
        ExpectedRevision::StreamExists => kurrentdb::StreamState::StreamExists,
        ExpectedRevision::Exact(r) => kurrentdb::StreamState::StreamRevision(r.0),
    }
}

/// Our metadata as EventStoreDB's JSON custom metadata, with the property
/// names its `$by_correlation_id` projection and tooling know.
#[derive(Serialize, Deserialize, Default)]
struct CustomMetadata {
    #[serde(
        rename = "$correlationId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    correlation_id: Option<Uuid>,
    #[serde(
        rename = "$causationId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    causation_id: Option<Uuid>,
}

fn encode_metadata(m: &Metadata) -> Vec<u8> {
    serde_json::to_vec(&CustomMetadata {
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
    })
    .expect("two optional UUIDs always serialize")
}

/// Metadata of an event someone else may have written: anything that is not
/// our JSON shape reads as no metadata rather than failing the read.
fn decode_metadata(bytes: &[u8]) -> Metadata {
    if bytes.is_empty() {
        return Metadata::default();
    }
    let m: CustomMetadata = serde_json::from_slice(bytes).unwrap_or_default();
    Metadata {
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
    }
}

/// An event encoded for the client, and the bytes it counts against the
/// server's append limit.
pub(crate) struct Encoded {
    pub(crate) events: Vec<kurrentdb::EventData>,
}

/// Encodes a batch, refusing it whole when it cannot be appended in one
/// request of at most `max_append_size` bytes (counted as the server does:
/// data, custom metadata and type name of every event).
///
/// # Errors
/// [`Error::InvalidInput`] for an empty batch or one over the limit;
/// [`Error::EventTooLarge`] when a single event is over it.
pub(crate) fn encode_batch(events: Vec<EventData>, max_append_size: usize) -> Result<Encoded> {
    if events.is_empty() {
        return Err(Error::InvalidInput(
            "an append needs at least one event".into(),
        ));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(events.len());
    let n = events.len();
    for e in events {
        let metadata = encode_metadata(&e.metadata);
        let size = e.payload.len() + metadata.len() + e.event_type.len();
        if size > max_append_size {
            return Err(Error::EventTooLarge {
                size,
                max: max_append_size,
            });
        }
        total += size;
        if total > max_append_size {
            return Err(Error::InvalidInput(format!(
                "a batch of {n} events needs more than the {max_append_size} bytes EventStoreDB \
                 accepts in one append; nothing was written: append fewer events at a time"
            )));
        }
        out.push(
            kurrentdb::EventData::binary(&e.event_type, bytes::Bytes::from(e.payload))
                .id(*e.id.as_uuid())
                .metadata(bytes::Bytes::from(metadata)),
        );
    }
    Ok(Encoded { events: out })
}

/// The `created` time: EventStoreDB sends 100 ns ticks since the Unix epoch
/// in the `created` metadata (the client keeps only whole seconds of it).
fn recorded_at(metadata: &HashMap<String, String>, fallback_secs: i64) -> Timestamp {
    metadata
        .get("created")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|ticks| Timestamp(ticks / 10))
        .unwrap_or(Timestamp(
            u64::try_from(fallback_secs).unwrap_or(0) * 1_000_000,
        ))
}

/// The commit position of a recorded event. Servers that do not know an
/// event's commit position on a stream read send the "end" sentinel there;
/// every event appended through gRPC commits itself, so its prepare position
/// is its commit position then.
pub(crate) fn commit_of(p: kurrentdb::Position) -> u64 {
    if p.commit <= i64::MAX as u64 {
        p.commit
    } else {
        p.prepare
    }
}

/// Whether an event of `$all` is one of ours: not in a system stream, not of
/// a system type (stream metadata, links, tombstones, statistics).
pub(crate) fn is_ours(e: &kurrentdb::RecordedEvent) -> bool {
    !e.stream_id().starts_with('$') && !e.event_type.starts_with('$')
}

/// Our envelope of a recorded event.
///
/// # Errors
/// [`Error::Backend`] when the stream name is not one we could have written.
pub(crate) fn recorded(e: kurrentdb::RecordedEvent) -> Result<RecordedEvent> {
    let stream = StreamId::new(e.stream_id()).map_err(|err| Error::Backend {
        message: format!("EventStoreDB returned an event of a stream neonhub cannot name: {err}"),
        retryable: false,
    })?;
    Ok(RecordedEvent {
        id: EventId::from_uuid(e.id),
        stream,
        revision: Revision(e.revision),
        position: match commit_of(e.position) {
            c if c <= i64::MAX as u64 => position_of(c)?,
            _ => {
                return Err(Error::Backend {
                    message: "EventStoreDB did not report the position of an event it read \
                              (servers before 22.x leave it out of stream reads); neonhub needs \
                              EventStoreDB 22.10 or later, or KurrentDB"
                        .into(),
                    retryable: false,
                });
            }
        },
        recorded_at: recorded_at(&e.metadata, e.created.timestamp()),
        metadata: decode_metadata(&e.custom_metadata),
        event_type: e.event_type,
        payload: e.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_order_and_odd_ones_mean_just_after() {
        for c in [0u64, 1, 97, 1 << 40, (1 << 62) - 1] {
            let p = position_of(c).unwrap();
            assert_eq!(
                all_from(p),
                if c == 0 {
                    AllFrom::Start
                } else {
                    AllFrom::At(c)
                }
            );
            assert_eq!(all_from(p.next()), AllFrom::After(c));
            assert_eq!(position_after(c).unwrap(), p.next());
            assert!(p.next() < position_of(c + 1).unwrap());
        }
        assert!(position_of(u64::MAX / 2 + 1).is_err());
    }

    #[test]
    fn an_unknown_commit_position_falls_back_to_the_prepare_position() {
        let known = kurrentdb::Position {
            commit: 100,
            prepare: 100,
        };
        assert_eq!(commit_of(known), 100);
        let unknown = kurrentdb::Position {
            commit: u64::MAX,
            prepare: 250,
        };
        assert_eq!(commit_of(unknown), 250);
    }

    #[test]
    fn metadata_round_trips_as_json_custom_metadata() {
        let m = Metadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: Some(Uuid::now_v7()),
        };
        let bytes = encode_metadata(&m);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json["$correlationId"],
            m.correlation_id.unwrap().to_string()
        );
        assert_eq!(decode_metadata(&bytes), m);
        assert_eq!(encode_metadata(&Metadata::default()), b"{}");
        assert_eq!(decode_metadata(b"not json"), Metadata::default());
        assert_eq!(decode_metadata(b""), Metadata::default());
    }

    fn data(payload: usize) -> EventData {
        EventData {
            id: EventId::new(),
            event_type: "t.v1".into(),
            metadata: Metadata::default(),
            payload: vec![7; payload],
        }
    }

    #[test]
    fn batches_over_the_append_limit_are_refused_whole() {
        assert!(matches!(
            encode_batch(vec![data(2000)], 1000),
            Err(Error::EventTooLarge { max: 1000, .. })
        ));
        match encode_batch(vec![data(400), data(400), data(400)], 1000) {
            Err(e @ Error::InvalidInput(_)) => assert!(e.is_client_error()),
            other => panic!("{:?}", other.map(|e| e.events.len())),
        }
        assert_eq!(
            encode_batch(vec![data(400), data(400)], 1000)
                .unwrap()
                .events
                .len(),
            2
        );
        assert!(matches!(
            encode_batch(vec![], 1000),
            Err(Error::InvalidInput(_))
        ));
    }
}
