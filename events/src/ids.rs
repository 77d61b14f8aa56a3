//! Typed identifiers: run ids, event ids, stream names, stream revisions,
//! global log positions and timestamps.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The id of one run of an agent or a connector: a UUID v7, so ids sort by
/// creation time. A client may choose it; it is then an idempotency key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(Uuid);

impl RunId {
    /// A fresh, time-ordered run id (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID (any version a client sends is accepted).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The run id of this run's step `key`: a UUID v5 of this id and the
    /// key, the same every time, so a later attempt finds the step again.
    pub fn step(&self, key: &str) -> RunId {
        RunId(Uuid::new_v5(&self.0, key.as_bytes()))
    }

    /// The stream that holds this run's events: `run-<run_id>`.
    pub fn stream(&self) -> StreamId {
        StreamId(format!("{}{}", StreamId::RUN_PREFIX, self.0))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0)
    }
}

impl FromStr for RunId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| Error::InvalidInput(format!("run id {s:?} is not a UUID: {e}")))
    }
}

/// The id of one recorded event. Appending an event with an id the store
/// already holds in the same stream is how a retried append stays idempotent
/// on EventStoreDB.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh, time-ordered event id (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// The id of one neonhub node sharing a store with others: 1 to 64 bytes of
/// ASCII letters, digits and `-_.`. A run's `RunStarted` names the node
/// executing that attempt (its owner), and the node renews a lease on
/// [`NodeId::lease_stream`] while it lives.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// The longest node id accepted, in bytes.
    pub const MAX_LEN: usize = 64;
    /// The prefix of a node's lease stream: `lease-<node id>`.
    pub const LEASE_PREFIX: &'static str = "lease-";

    /// Validates a node id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming what is wrong with it.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(Error::InvalidInput(format!(
                "node id {id:?} must be 1 to {} bytes long",
                Self::MAX_LEN
            )));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::InvalidInput(format!(
                "node id {id:?} may hold only ASCII letters, digits and '-_.'"
            )));
        }
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream this node's lease renewals go to: `lease-<node id>`. It
    /// is not a run stream ([`StreamId::run_id`] is `None`), so recovery and
    /// the projections pass over it.
    pub fn lease_stream(&self) -> StreamId {
        StreamId(format!("{}{}", Self::LEASE_PREFIX, self.0))
    }
}

impl TryFrom<String> for NodeId {
    type Error = Error;

    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0
    }
}

impl FromStr for NodeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// The name of a stream. Valid names are 1 to 255 bytes of ASCII letters,
/// digits and `-_.:@`, not starting with `$` (reserved for system streams).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// The longest stream name accepted, in bytes.
    pub const MAX_LEN: usize = 255;
    /// The prefix of the stream that holds one run: `run-<run_id>`.
    pub const RUN_PREFIX: &'static str = "run-";

    /// Validates a stream name.
    ///
    /// # Errors
    /// [`Error::InvalidStreamId`] naming what is wrong with it.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > Self::MAX_LEN {
            Some("it is longer than 255 bytes")
        } else if name.starts_with('$') {
            Some("names starting with '$' are reserved for system streams")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
        {
            Some("only ASCII letters, digits and '-_.:@' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidStreamId { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// A name read back from storage, which was validated when written.
    pub(crate) fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The run id, when this is a run stream (`run-<uuid>`).
    pub fn run_id(&self) -> Option<RunId> {
        self.0
            .strip_prefix(Self::RUN_PREFIX)
            .and_then(|rest| Uuid::parse_str(rest).ok())
            .map(RunId)
    }
}

impl TryFrom<String> for StreamId {
    type Error = Error;

    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl FromStr for StreamId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:?})", self.0)
    }
}

/// The 0-based index of an event within its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of a stream's first event.
    pub const FIRST: Revision = Revision(0);

    /// The revision after this one.
    pub const fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event's place in the global order of the whole store.
///
/// Positions only grow. On the embedded log they are contiguous (0, 1, 2, ...);
/// on EventStoreDB they are `$all` commit positions and have gaps. Reads "from"
/// a position include the event at that position; to go on after an event at
/// `p`, read from `p.next()`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// The beginning of the log.
    pub const START: Position = Position(0);

    /// The smallest position after this one.
    pub const fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Wall-clock time in microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stream_round_trips_its_run_id() {
        let id = RunId::new();
        let stream = id.stream();
        assert!(stream.as_str().starts_with("run-"));
        assert_eq!(stream.run_id(), Some(id));
        assert_eq!(StreamId::new("orders-1").unwrap().run_id(), None);
    }

    #[test]
    fn invalid_stream_names_are_rejected_with_a_reason() {
        for bad in ["", "$all", "has space", "ünïcode", &"x".repeat(256)] {
            match StreamId::new(bad) {
                Err(Error::InvalidStreamId { reason, .. }) => assert!(!reason.is_empty()),
                other => panic!("{bad:?} was accepted: {other:?}"),
            }
        }
        assert!(StreamId::new("run-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").is_ok());
        assert!(StreamId::new("x".repeat(255)).is_ok());
    }

    #[test]
    fn run_ids_are_time_ordered_v7() {
        let a = RunId::new();
        let b = RunId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RunId>().unwrap(), a);
        assert!("nope".parse::<RunId>().is_err());
    }
}
