//! The one error type of the projections crate, with what a caller should do
//! about each variant.

use std::path::PathBuf;

use neonhub_events::Position;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building or querying a projection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The projection could not apply the event at `position`: it does not
    /// decode, or it does not fit the run's state (a terminal event for an
    /// unknown run, a second `RunStarted{attempt: 1}`, an event after the
    /// terminal one). The projection stopped before it; its checkpoint still
    /// points at the last batch that applied, and nothing of the failing batch
    /// was written.
    ///
    /// Never skip it: fix the log (an upcaster for an old type) or the
    /// projection, then restart the runner, which resumes from the checkpoint.
    #[error(
        "projection {projection} failed on the event at position {position} ({event_type}): {reason}"
    )]
    Apply {
        /// The projection's name.
        projection: &'static str,
        /// Where the event sits in the log.
        position: Position,
        /// The stored event type name.
        event_type: String,
        /// What did not fit.
        reason: String,
    },

    /// The projection's checkpoint is past the log's head: the table holds
    /// events this log does not (an older log was restored, or its tail
    /// cut). The projection refuses to apply anything, since new events
    /// would reuse positions it has already seen. Keep the log (it is the
    /// record): move the table aside and rebuild it (`neonhub replay`).
    #[error("{}", crate::health::ahead_message(*checkpoint, *head))]
    AheadOfLog {
        /// The projection's checkpoint.
        checkpoint: Position,
        /// The log's head.
        head: Position,
    },

    /// The event store failed (a read, a subscription, the head). Usually
    /// transient for reads: restart the runner, which resumes from its
    /// checkpoint. [`neonhub_events::Error::Closed`] means the store shut down.
    #[error("event store: {0}")]
    Store(#[from] neonhub_events::Error),

    /// SQLite failed (the file is unreadable, the disk is full, it is locked).
    /// The failed transaction was rolled back; rows and checkpoint still agree.
    #[error("projection database: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The database file was written by a newer schema version than this build
    /// knows. Run a newer neonhub, or rebuild the projection into a fresh file.
    #[error(
        "projection database {} has schema version {found}, this build knows up to {known}; run a newer neonhub or rebuild into a fresh file",
        path.display()
    )]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// The version stored in the file.
        found: i64,
        /// The newest version this build writes.
        known: i64,
    },

    /// The database file was written by an older build (an older schema
    /// version) and is opened only to read: start `neonhub serve` once (it
    /// migrates the file in place), or rebuild it with `neonhub replay`.
    #[error(
        "projection database {} has schema version {found}, from an older build; this build reads {current}: start `neonhub serve` once to migrate it in place, or rebuild it with `neonhub replay`",
        path.display()
    )]
    SchemaOutdated {
        /// The database file.
        path: PathBuf,
        /// The version stored in the file.
        found: i64,
        /// The version this build reads and writes.
        current: i64,
    },

    /// A rebuild was asked to write into a file that already exists. Rebuilds
    /// always start from an empty file: pick another path or remove it.
    #[error("{} already exists; a rebuild writes a fresh file, pick another path or remove it", .0.display())]
    TargetExists(PathBuf),

    /// A bad argument from the caller (a cursor that does not parse, a limit
    /// of zero). A client error (HTTP 400); the message says what to fix.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A stored row does not parse (the file was edited by hand or damaged).
    /// Rebuild the projection from the log.
    #[error("corrupt projection row for run {run_id}: {reason}")]
    CorruptRow {
        /// The row's run id, as stored.
        run_id: String,
        /// What did not parse.
        reason: String,
    },

    /// An operating-system I/O error (renaming the rebuilt file into place).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A thread of the audit check stopped without an answer: it panicked.
    /// A bug in neonhub: report it with the panic message printed above.
    #[error("{0} stopped without an answer (it panicked, see above): a bug, please report it")]
    Worker(&'static str),
}
