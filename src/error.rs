//! The one error type of the `neonhub` library, with what a caller should do
//! about each variant.

use neonhub_events::Position;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a command or the service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event store failed; [`neonhub_events::Error::Locked`] means another
    /// process (usually `neonhub serve`) holds the data directory.
    #[error(transparent)]
    Store(#[from] neonhub_events::Error),
    /// The actor runtime refused a run or could not be set up.
    #[error(transparent)]
    Actors(#[from] neonhub_actors::Error),
    /// A projection failed (SQLite, an event that does not apply).
    #[error(transparent)]
    Projection(#[from] neonhub_projections::Error),
    /// Another process (usually `neonhub serve`) writes the AgentRun table of
    /// this data directory beside a store that is not embedded. Stop it or
    /// pick another `--data-dir`.
    #[error("the data directory {} is in use by another process (lock file {} is held); stop that process (usually `neonhub serve`) or pick another --data-dir", dir.display(), lock.display())]
    DataDirLocked {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The lock file.
        lock: std::path::PathBuf,
    },
    /// A bad argument: the message says which and how to fix it.
    #[error("{0}")]
    Usage(String),
    /// `audit verify` found the log or the table unsound; the message names
    /// the first bad position. Restore from a backup; never edit the log.
    #[error("audit failed at position {position}: {reason}")]
    AuditFailed {
        /// The first position that is not sound.
        position: Position,
        /// What is wrong there.
        reason: String,
    },
    /// `audit verify` found the table or its metrics unlike the log, or an
    /// anchor the log does not hold, or a table ahead of the log; the
    /// message says what and what to do. Differences were printed before.
    #[error("audit failed: {0}")]
    Audit(String),
    /// An operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A background part of the service (the projection runner, the HTTP
    /// server) stopped unexpectedly; the message says which and why.
    #[error("{0}")]
    Service(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
