//! The one error type of the events crate, with what a caller should do
//! about each variant.

use std::path::PathBuf;

use crate::ids::{Position, Revision, StreamId};
use crate::store::ExpectedRevision;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when storing or reading events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream was not at the revision the append expected: someone else
    /// appended first. Nothing was written.
    ///
    /// Handle it by re-reading the stream and deciding again (a second
    /// `RunStarted` at `NoStream` means the run id is taken: answer with the
    /// existing run); over HTTP this is a 409 Conflict.
    #[error(
        "wrong expected version on stream {stream}: expected {expected}, but the stream is {}",
        match actual { Some(r) => format!("at revision {r}"), None => "absent".to_string() }
    )]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedRevision,
        /// The stream's current last revision, `None` if it does not exist.
        actual: Option<Revision>,
    },

    /// Stored data failed its checksum or its hash chain: the log was damaged
    /// or altered at `offset` of `segment`, with valid records after it.
    ///
    /// Never retry and never skip: stop, keep the files for inspection and
    /// restore from a replica or backup. The store refuses to open.
    #[error("corrupt event log: {reason} in {} at byte offset {offset}", segment.display())]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// The byte offset of the first bad record in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// The hash chain does not hold at `position`: a record was altered,
    /// inserted or removed (its checksum may be fine).
    ///
    /// Treat like [`Error::Corruption`]: the log can no longer be trusted
    /// after `position`.
    #[error("hash chain broken at position {position} ({} at byte offset {offset})", segment.display())]
    ChainBroken {
        /// The first position whose chain value is wrong.
        position: Position,
        /// The segment file holding it.
        segment: PathBuf,
        /// The byte offset of the record in that file.
        offset: u64,
    },

    /// One event (payload plus envelope) is larger than the store accepts.
    /// Nothing of the batch was written.
    ///
    /// A client error (HTTP 413): send less data per event, or raise the
    /// limit in the store's options.
    #[error(
        "event of {size} bytes is larger than the maximum of {max} bytes; send less data per event or raise the limit"
    )]
    EventTooLarge {
        /// The event's encoded size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },

    /// A stream name was rejected. A client error (HTTP 400); fix the name.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamId {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A request was malformed (an empty batch, an id that does not parse).
    /// A client error (HTTP 400); the message says what to fix.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The store has been closed.
    /// Nothing more can be appended through this handle.
    ///
    /// During shutdown this is expected; otherwise reopen the store (HTTP 503).
    #[error("the event store is closed")]
    Closed,

    /// An append through a handle opened with
    /// [`crate::EmbeddedLog::open_read_only`]. Append through the process
    /// that holds the log open (e.g. over neonhub's HTTP API).
    #[error("the event log at {} is open read-only here; append through the process that holds it (neonhub serve)", dir.display())]
    ReadOnly {
        /// The data directory.
        dir: PathBuf,
    },

    /// The data directory is already open in another process (or another
    /// handle in this one). Stop the other process or use another directory.
    #[error("the event log at {} is already open in another process (lock file {} is held); stop that process or pick another --data-dir", dir.display(), lock.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },

    /// A read found no event log at `dir`: the directory does not exist or
    /// holds no segment. Reading never creates a log: check the path
    /// (`--data-dir`), or start `neonhub serve` there first.
    #[error("no neonhub event log at {}: the directory does not exist or holds no log segment (check --data-dir)", dir.display())]
    NotALog {
        /// The directory that was read.
        dir: PathBuf,
    },
    /// The events asked for were moved out of the live log by `neonhub log
    /// archive`, into compressed segments in `archive`. Not a fault of the
    /// log: read them from the archive (`audit verify --archive` checks it);
    /// over HTTP this is 410 Gone with this message.
    #[error(
        "{} archived to {}: `neonhub log archive` moved them out of the live log (its segments are compressed there, listed in MANIFEST.json)",
        match stream { Some(s) => format!("the events of stream {s} (from position {position})"), None => format!("the events at position {position}") },
        archive.display()
    )]
    Archived {
        /// The stream read, when one stream was read.
        stream: Option<StreamId>,
        /// The position read, or the first position of the archived segment
        /// holding the stream's first events read.
        position: Position,
        /// The archive directory the manifest names.
        archive: PathBuf,
    },

    /// An archived segment or an archive manifest is missing, or does not
    /// check out (its checksum, its records, its chain). The live log is
    /// not at fault: restore the named file from a copy of the archive.
    #[error("archive {}: {reason}", path.display())]
    ArchiveDamaged {
        /// The file missing or damaged.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file named like a segment is not one, or has a format version this
    /// build does not know. Move the file away, or run a newer neonhub.
    #[error("{}: {reason}", path.display())]
    BadSegment {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A stored payload did not decode as the event type it claims to be, even
    /// after upcasting. Replay would fail here: add or fix an upcaster.
    #[error("cannot decode event {event_type} at position {position}: {reason}")]
    Decode {
        /// The stored event type name.
        event_type: String,
        /// Where the event sits in the log.
        position: Position,
        /// What the decoder said.
        reason: String,
    },

    /// A run stream's event does not fit the run (a second start, an event
    /// after the terminal one, ...): the log holds a run that cannot be
    /// replayed. Damaged data or a bug in a writer: report it.
    #[error("run stream {stream} at position {position}: {reason}")]
    InvalidRun {
        /// The stream.
        stream: String,
        /// Where the event sits in the log.
        position: Position,
        /// What does not fit.
        reason: crate::state::FoldError,
    },

    /// An event type name no decoder or upcaster knows. Replay would fail
    /// here: register an upcaster for it.
    #[error(
        "unknown event type {event_type:?} at position {position}; register an upcaster for it"
    )]
    UnknownEventType {
        /// The stored event type name.
        event_type: String,
        /// Where the event sits in the log.
        position: Position,
    },

    /// An operating-system I/O error, with what was being done.
    ///
    /// Usually transient for reads; after a failed write or sync the embedded
    /// log stops accepting appends ([`Error::Closed`]) and must be reopened,
    /// which recovers to the last durable record.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A remote store (EventStoreDB) failed in a way the other variants do
    /// not describe; `retryable` says whether trying again may help (HTTP 503).
    #[error("event store backend error: {message}")]
    Backend {
        /// What happened, without credentials.
        message: String,
        /// Whether the same request may succeed later.
        retryable: bool,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether this error is the caller's fault (bad name, too large, bad
    /// input), as opposed to a conflict or a failure of the store.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::EventTooLarge { .. } | Error::InvalidStreamId { .. } | Error::InvalidInput(_)
        )
    }
}
