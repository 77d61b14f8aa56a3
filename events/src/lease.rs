//! A node's lease: the `LeaseRenewed` events a node appends to its own
//! stream, `lease-<node id>`, while it lives. They are not run events: the
//! codec, recovery and the projections pass over that stream.

use serde::{Deserialize, Serialize};

use crate::codec::from_msgpack;
use crate::error::{Error, Result};
use crate::ids::{EventId, NodeId, Timestamp};
use crate::run::event_types;
use crate::store::{EventData, Metadata, RecordedEvent};

/// A node renewed its lease: it is alive and executing the runs it owns
/// for at least `lease_millis` after other nodes see this event.
///
/// Other nodes never compare `renewed_at` with their own clock: a lease is
/// expired when an observer has seen no new renewal for `lease_millis` of
/// its own monotonic clock. `renewed_at` is for people reading the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRenewed {
    /// The node.
    pub node: NodeId,
    /// How long the lease lasts without another renewal, in milliseconds.
    pub lease_millis: u64,
    /// When the node renewed it, by its own clock.
    pub renewed_at: Timestamp,
}

impl LeaseRenewed {
    /// The event to append to [`NodeId::lease_stream`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if it cannot be encoded.
    pub fn encode(&self) -> Result<EventData> {
        let payload = rmp_serde::to_vec_named(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))?;
        Ok(EventData {
            id: EventId::new(),
            event_type: event_types::LEASE_RENEWED.to_owned(),
            metadata: Metadata::default(),
            payload,
        })
    }

    /// Decodes a recorded renewal.
    ///
    /// # Errors
    /// [`Error::UnknownEventType`] for another event type, [`Error::Decode`]
    /// for a payload that does not decode.
    pub fn decode(recorded: &RecordedEvent) -> Result<Self> {
        if recorded.event_type != event_types::LEASE_RENEWED {
            return Err(Error::UnknownEventType {
                event_type: recorded.event_type.clone(),
                position: recorded.position,
            });
        }
        from_msgpack(&recorded.payload).map_err(|reason| Error::Decode {
            event_type: recorded.event_type.clone(),
            position: recorded.position,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Position, Revision, StreamId};

    #[test]
    fn a_renewal_decodes_as_it_was_encoded_and_is_not_a_run_event() {
        let node = NodeId::new("node-a").unwrap();
        let renewed = LeaseRenewed {
            node: node.clone(),
            lease_millis: 2000,
            renewed_at: Timestamp(42),
        };
        let data = renewed.encode().unwrap();
        let stream = node.lease_stream();
        assert_eq!(stream.as_str(), "lease-node-a");
        assert_eq!(stream.run_id(), None);
        let recorded = RecordedEvent {
            id: data.id,
            stream: StreamId::new(stream.as_str()).unwrap(),
            revision: Revision(0),
            position: Position(7),
            recorded_at: Timestamp(43),
            event_type: data.event_type.clone(),
            metadata: data.metadata,
            payload: data.payload.clone(),
        };
        assert_eq!(LeaseRenewed::decode(&recorded).unwrap(), renewed);
        assert!(crate::Codec::new().decode(&recorded).is_err());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a/b").is_err());
        assert!(NodeId::new("x".repeat(65)).is_err());
    }
}
