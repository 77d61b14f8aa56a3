//! Encoding run events as MessagePack payloads, and decoding stored payloads
//! back, through upcasters for type names that are no longer current.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ids::{EventId, Position};
use crate::json_text::JsonText;
use crate::run::{RunEvent, RunStarted, RunSucceeded, event_types};
use crate::store::{EventData, Metadata, RecordedEvent};

/// Turns the payload of an old event type into a current [`RunEvent`].
/// Returns a message saying what did not fit on failure.
pub type Upcaster = Arc<dyn Fn(&[u8]) -> std::result::Result<RunEvent, String> + Send + Sync>;

/// Encodes and decodes [`RunEvent`]s. Payloads are MessagePack maps with
/// field names, so an added `#[serde(default)]` field still decodes old data.
///
/// ```
/// use neonhub_events::{Codec, RunEvent, RunSucceeded, RunId, Timestamp, Metadata};
/// let codec = Codec::new();
/// let event = RunEvent::Succeeded(RunSucceeded {
///     run_id: RunId::new(), attempt: 1, output: serde_json::json!({"ok": true}),
///     duration_micros: 1500, finished_at: Timestamp::now(),
/// });
/// let data = codec.encode(&event, Metadata::default()).unwrap();
/// assert_eq!(data.event_type, "run.succeeded.v1");
/// assert_eq!(codec.decode_payload(&data.event_type, &data.payload, Default::default()).unwrap(), event);
/// ```
#[derive(Clone, Default)]
pub struct Codec {
    upcasters: HashMap<String, Upcaster>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("upcasters", &self.upcasters.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Codec {
    /// A codec for the current event types plus every built-in upcaster
    /// (none yet: `v1` is the first version of each event).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an upcaster for the retired type name `old_type`.
    ///
    /// # Panics
    /// If `old_type` is a current type name: current types decode directly.
    pub fn with_upcaster(
        mut self,
        old_type: &str,
        upcast: impl Fn(&[u8]) -> std::result::Result<RunEvent, String> + Send + Sync + 'static,
    ) -> Self {
        assert!(
            ![
                event_types::RUN_STARTED,
                event_types::RUN_SUCCEEDED,
                event_types::RUN_FAILED,
                event_types::STEP_RESOLVED,
            ]
            .contains(&old_type),
            "{old_type} is a current event type and cannot be upcast"
        );
        self.upcasters.insert(old_type.to_owned(), Arc::new(upcast));
        self
    }

    /// Encodes `event` as an [`EventData`] with a fresh event id.
    ///
    /// # Errors
    /// Only if serialization fails, which the event types do not do.
    pub fn encode(&self, event: &RunEvent, metadata: Metadata) -> Result<EventData> {
        Ok(EventData {
            id: EventId::new(),
            event_type: event.event_type().to_owned(),
            metadata,
            payload: encode_payload(event)?,
        })
    }

    /// Decodes a recorded event.
    ///
    /// # Errors
    /// [`Error::UnknownEventType`] or [`Error::Decode`], naming the position.
    pub fn decode(&self, recorded: &RecordedEvent) -> Result<RunEvent> {
        self.decode_payload(&recorded.event_type, &recorded.payload, recorded.position)
    }

    /// Decodes a payload stored under `event_type`; `position` only labels errors.
    ///
    /// # Errors
    /// [`Error::UnknownEventType`] or [`Error::Decode`], naming the position.
    pub fn decode_payload(
        &self,
        event_type: &str,
        payload: &[u8],
        position: Position,
    ) -> Result<RunEvent> {
        let decoded = match event_type {
            event_types::RUN_STARTED => from_msgpack(payload).map(RunEvent::Started),
            event_types::RUN_SUCCEEDED => from_msgpack(payload).map(RunEvent::Succeeded),
            event_types::RUN_FAILED => from_msgpack(payload).map(RunEvent::Failed),
            event_types::STEP_RESOLVED => from_msgpack(payload).map(RunEvent::StepResolved),
            other => match self.upcasters.get(other) {
                Some(upcast) => upcast(payload),
                None => {
                    return Err(Error::UnknownEventType {
                        event_type: other.to_owned(),
                        position,
                    });
                }
            },
        };
        decoded.map_err(|reason| Error::Decode {
            event_type: event_type.to_owned(),
            position,
            reason,
        })
    }
}

/// A run event decoded by [`Codec::decode_payload_text`]: a start or a
/// success with its input or output as JSON text; any other event (and any
/// event an upcaster made) as [`RunEvent`].
#[derive(Clone, Debug, PartialEq)]
pub enum TextEvent {
    /// `RunStarted`, its input as text.
    Started(RunStarted<JsonText>),
    /// `RunSucceeded`, its output as text.
    Succeeded(RunSucceeded<JsonText>),
    /// Any other event.
    Other(RunEvent),
}

impl Codec {
    /// Decodes a payload as [`Self::decode_payload`] does, with the same
    /// errors for the same payloads, but with a start's input and a
    /// success's output written straight to JSON text ([`JsonText`]) rather
    /// than built as a [`serde_json::Value`]: for readers that compare or
    /// show them (`audit verify`).
    ///
    /// # Errors
    /// As [`Self::decode_payload`].
    pub fn decode_payload_text(
        &self,
        event_type: &str,
        payload: &[u8],
        position: Position,
    ) -> Result<TextEvent> {
        let decoded = match event_type {
            event_types::RUN_STARTED => from_msgpack(payload).map(TextEvent::Started),
            event_types::RUN_SUCCEEDED => from_msgpack(payload).map(TextEvent::Succeeded),
            _ => {
                return self
                    .decode_payload(event_type, payload, position)
                    .map(TextEvent::Other);
            }
        };
        decoded.map_err(|reason| Error::Decode {
            event_type: event_type.to_owned(),
            position,
            reason,
        })
    }
}

/// The MessagePack payload of `event` (the inner struct, not the enum).
///
/// # Errors
/// Only if serialization fails, which the event types do not do.
pub fn encode_payload(event: &RunEvent) -> Result<Vec<u8>> {
    match event {
        RunEvent::Started(e) => to_msgpack(e),
        RunEvent::Succeeded(e) => to_msgpack(e),
        RunEvent::Failed(e) => to_msgpack(e),
        RunEvent::StepResolved(e) => to_msgpack(e),
    }
}

fn to_msgpack<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    // What `rmp_serde::to_vec_named` does, into a buffer sized for a
    // typical event: grown from empty, it reallocates (and copies) a few
    // times per event.
    let mut payload = Vec::with_capacity(PAYLOAD_CAPACITY);
    rmp_serde::encode::write_named(&mut payload, value)
        .map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))?;
    Ok(payload)
}

/// The first allocation of an encoded payload: the mock Gmail send's step
/// takes 236 bytes for its `RunStarted` and 142 for its `RunSucceeded`.
const PAYLOAD_CAPACITY: usize = 256;

/// Decodes a MessagePack payload; useful inside upcasters.
///
/// # Errors
/// The decoder's message.
pub fn from_msgpack<T: DeserializeOwned>(payload: &[u8]) -> std::result::Result<T, String> {
    rmp_serde::from_slice(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::ids::{RunId, Timestamp};
    use crate::run::{ErrorKind, RunError, RunFailed, RunKind, RunStarted, RunSucceeded};

    /// Any JSON value (finite numbers), up to four levels deep.
    pub(crate) fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,24}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn run_id() -> impl Strategy<Value = RunId> {
        any::<u128>().prop_map(|n| RunId::from_uuid(Uuid::from_u128(n)))
    }

    fn error_kind() -> impl Strategy<Value = ErrorKind> {
        prop::sample::select(ErrorKind::ALL.to_vec())
    }

    fn started() -> impl Strategy<Value = RunEvent> {
        (
            run_id(),
            any::<bool>(),
            "[a-z_]{1,16}",
            "[a-z_.]{1,16}",
            prop::option::of("[a-z.]{1,20}"),
            json(),
            1u32..10,
            prop::option::of(run_id()),
            any::<u128>(),
            any::<u64>(),
        )
            .prop_map(
                |(run_id, agent, target, operation, intent, input, attempt, parent, corr, at)| {
                    RunEvent::Started(RunStarted {
                        run_id,
                        kind: if agent {
                            RunKind::Agent
                        } else {
                            RunKind::Connector
                        },
                        target,
                        operation,
                        intent,
                        input,
                        attempt,
                        parent_run_id: parent,
                        correlation_id: Uuid::from_u128(corr),
                        started_at: Timestamp(at),
                        request_digest: None,
                        step: None,
                        resumed: false,
                        node: None,
                        paused_micros: 0,
                    })
                },
            )
    }

    fn succeeded() -> impl Strategy<Value = RunEvent> {
        (run_id(), 1u32..10, json(), any::<u64>(), any::<u64>()).prop_map(
            |(run_id, attempt, output, d, at)| {
                RunEvent::Succeeded(RunSucceeded {
                    run_id,
                    attempt,
                    output,
                    duration_micros: d,
                    finished_at: Timestamp(at),
                })
            },
        )
    }

    fn failed() -> impl Strategy<Value = RunEvent> {
        (
            run_id(),
            1u32..10,
            error_kind(),
            ".{0,40}",
            any::<bool>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(run_id, attempt, kind, message, will_retry, d, at)| {
                RunEvent::Failed(RunFailed {
                    run_id,
                    attempt,
                    error: RunError { kind, message },
                    will_retry,
                    retry_at: None,
                    duration_micros: d,
                    finished_at: Timestamp(at),
                })
            })
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips_every_event_type(event in prop_oneof![started(), succeeded(), failed()]) {
            let codec = Codec::new();
            let data = codec.encode(&event, Metadata::default()).unwrap();
            prop_assert_eq!(&data.event_type, event.event_type());
            let back = codec.decode_payload(&data.event_type, &data.payload, Position(7)).unwrap();
            prop_assert_eq!(back, event);
        }

        /// The text decode gives the same event, its JSON as the text
        /// `serde_json` writes for the `Value`, and fails where the tree
        /// decode fails (every prefix of the payload).
        #[test]
        fn the_text_decode_agrees_with_the_tree_decode(event in prop_oneof![started(), succeeded(), failed()]) {
            let codec = Codec::new();
            let data = codec.encode(&event, Metadata::default()).unwrap();
            let text = codec.decode_payload_text(&data.event_type, &data.payload, Position(7)).unwrap();
            match (&text, &event) {
                (TextEvent::Started(t), RunEvent::Started(e)) => {
                    prop_assert_eq!(t.input.as_bytes().to_vec(), serde_json::to_vec(&e.input).unwrap());
                    prop_assert_eq!((t.run_id, t.attempt, &t.target, t.started_at), (e.run_id, e.attempt, &e.target, e.started_at));
                }
                (TextEvent::Succeeded(t), RunEvent::Succeeded(e)) => {
                    prop_assert_eq!(t.output.as_bytes().to_vec(), serde_json::to_vec(&e.output).unwrap());
                    prop_assert_eq!((t.run_id, t.finished_at), (e.run_id, e.finished_at));
                }
                (TextEvent::Other(t), e) => prop_assert_eq!(t, e),
                (t, e) => prop_assert!(false, "{t:?} for {e:?}"),
            }
            for cut in 0..data.payload.len() {
                let payload = &data.payload[..cut];
                prop_assert_eq!(
                    codec.decode_payload(&data.event_type, payload, Position(7)).is_ok(),
                    codec.decode_payload_text(&data.event_type, payload, Position(7)).is_ok(),
                    "a payload cut at {}", cut
                );
            }
        }
    }

    #[test]
    fn an_added_defaulted_field_still_decodes_old_payloads() {
        // A RunStarted written before `intent` and `parent_run_id` existed.
        #[derive(Serialize)]
        struct OldStarted {
            run_id: RunId,
            kind: RunKind,
            target: String,
            operation: String,
            input: Value,
            attempt: u32,
            correlation_id: Uuid,
            started_at: Timestamp,
        }
        let old = OldStarted {
            run_id: RunId::new(),
            kind: RunKind::Agent,
            target: "echo".into(),
            operation: "run".into(),
            input: serde_json::json!({"a": 1}),
            attempt: 1,
            correlation_id: Uuid::nil(),
            started_at: Timestamp(5),
        };
        let payload = rmp_serde::to_vec_named(&old).unwrap();
        let RunEvent::Started(s) = Codec::new()
            .decode_payload(event_types::RUN_STARTED, &payload, Position(0))
            .unwrap()
        else {
            panic!("not a RunStarted");
        };
        assert_eq!(s.intent, None);
        assert_eq!(s.parent_run_id, None);
        assert_eq!(s.target, "echo");
    }

    #[test]
    fn a_renamed_type_decodes_through_its_upcaster() {
        // Pretend an old log has `run.completed.v0 {id, result}` for what is
        // now `run.succeeded.v1`.
        #[derive(Serialize, serde::Deserialize)]
        struct Completed {
            id: RunId,
            result: Value,
        }
        let id = RunId::new();
        let payload = rmp_serde::to_vec_named(&Completed {
            id,
            result: serde_json::json!("done"),
        })
        .unwrap();

        let plain = Codec::new();
        match plain.decode_payload("run.completed.v0", &payload, Position(3)) {
            Err(Error::UnknownEventType {
                event_type,
                position,
            }) => {
                assert_eq!(event_type, "run.completed.v0");
                assert_eq!(position, Position(3));
            }
            other => panic!("expected UnknownEventType, got {other:?}"),
        }

        let codec = plain.with_upcaster("run.completed.v0", |bytes| {
            let old: Completed = from_msgpack(bytes)?;
            Ok(RunEvent::Succeeded(RunSucceeded {
                run_id: old.id,
                attempt: 1,
                output: old.result,
                duration_micros: 0,
                finished_at: Timestamp(0),
            }))
        });
        let event = codec
            .decode_payload("run.completed.v0", &payload, Position(3))
            .unwrap();
        assert_eq!(event.run_id(), id);
        assert_eq!(event.event_type(), event_types::RUN_SUCCEEDED);
    }

    #[test]
    fn a_garbled_payload_is_a_decode_error_naming_the_position() {
        match Codec::new().decode_payload(event_types::RUN_FAILED, b"\xc1garbage", Position(42)) {
            Err(Error::Decode {
                position,
                event_type,
                ..
            }) => {
                assert_eq!(position, Position(42));
                assert_eq!(event_type, event_types::RUN_FAILED);
            }
            other => panic!("expected Decode, got {other:?}"),
        }
    }
}
