//! neonhub's event model and event stores.
//!
//! Every run of an agent or a connector is a stream of [`RunEvent`]s
//! (`RunStarted`, then `RunSucceeded` or `RunFailed`) appended to an
//! [`EventStore`]: the embedded log ([`EmbeddedLog`], the default) or
//! EventStoreDB. Payloads are MessagePack, encoded by the [`Codec`].

mod codec;
#[cfg(feature = "contract")]
pub mod contract;
mod error;
#[cfg(feature = "eventstoredb")]
mod esdb;
mod ids;
mod json_text;
mod lease;
mod log;
mod run;
mod state;
mod store;

pub use codec::{Codec, TextEvent, Upcaster, encode_payload, from_msgpack};
pub use error::{Error, Result};
#[cfg(feature = "eventstoredb")]
pub use esdb::{EsdbOptions, EsdbStore};
pub use ids::{EventId, NodeId, Position, Revision, RunId, StreamId, Timestamp};
pub use json_text::JsonText;
pub use lease::LeaseRenewed;
pub use log::{
    ArchiveReport, Durability, EmbeddedLog, LogOptions, Repair, TornTail, VerifiedRecord,
    VerifyReport, WriterHealth,
};
pub use run::{
    ErrorKind, RunError, RunEvent, RunFailed, RunKind, RunStarted, RunSucceeded, StepOutcome,
    StepResolved, Usage, event_types, request_digest,
};
pub use state::{FoldError, RunState, RunStatus, UnknownRunStatus};
pub use store::{
    AppendResult, Direction, EventData, EventStore, ExpectedRevision, Metadata, ReadFrom,
    RecordedEvent, SharedStore, Subscription, SubscriptionSource,
};
