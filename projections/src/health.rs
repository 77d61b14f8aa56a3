//! Where a projection stands, shared by its runner with whoever asks
//! (`/readyz`, `/metrics`): following the log, retrying after a transient
//! error, refusing a log that is behind its checkpoint, or stopped; with its
//! errors counted by kind (a fixed set, so metric labels stay bounded).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use neonhub_events::Position;

use crate::error::Error;

/// The kinds errors are counted under (the `kind` label).
pub const ERROR_KINDS: [&str; 6] = ["sqlite_busy", "sqlite", "store", "apply", "ahead", "other"];

/// The state of a projection runner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectionState {
    /// Applying the log as it grows.
    Following,
    /// A transient error (a busy or locked SQLite file, a store read): the
    /// batch is retried with backoff until it applies.
    Retrying {
        /// The error's kind, one of [`ERROR_KINDS`].
        kind: &'static str,
        /// The error.
        message: String,
    },
    /// The checkpoint is past the log's head: the table holds events this
    /// log does not (an older log restored, a cut tail). Nothing is applied
    /// until the table is rebuilt from this log.
    Ahead {
        /// The projection's checkpoint.
        checkpoint: Position,
        /// The log's head.
        head: Position,
    },
    /// Stopped on an error that retrying cannot fix (an event that does not
    /// apply); the message says what.
    Stopped {
        /// The error.
        message: String,
    },
}

#[derive(Debug)]
struct Inner {
    state: ProjectionState,
    errors: [u64; ERROR_KINDS.len()],
    last_error: Option<&'static str>,
}

/// A cheap, cloneable handle on a projection's [`ProjectionState`] and error
/// counts.
#[derive(Clone, Debug)]
pub struct ProjectionHealth {
    inner: Arc<Mutex<Inner>>,
}

impl Default for ProjectionHealth {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: ProjectionState::Following,
                errors: [0; ERROR_KINDS.len()],
                last_error: None,
            })),
        }
    }
}

impl ProjectionHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state.
    pub fn state(&self) -> ProjectionState {
        self.lock().state.clone()
    }

    /// Why the projection is not following the log, for `/readyz` and logs:
    /// what is wrong and what to do; `None` while it follows.
    pub fn problem(&self) -> Option<String> {
        match self.state() {
            ProjectionState::Following => None,
            ProjectionState::Retrying { message, .. } => Some(format!(
                "the projection is retrying after a transient error: {message}"
            )),
            ProjectionState::Ahead { checkpoint, head } => Some(ahead_message(checkpoint, head)),
            ProjectionState::Stopped { message } => {
                Some(format!("the projection has stopped: {message}"))
            }
        }
    }

    pub(crate) fn set(&self, state: ProjectionState) {
        self.lock().state = state;
    }

    /// Counts `error` under its kind, and returns the kind.
    pub(crate) fn count(&self, error: &Error) -> &'static str {
        let kind = kind_of(error);
        let mut inner = self.lock();
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            inner.errors[i] += 1;
        }
        inner.last_error = Some(kind);
        kind
    }

    /// Prometheus text: the checkpoint, the head, the lag (0 when ahead),
    /// whether it is ahead, its state, errors by kind and the last error's
    /// kind.
    pub fn render(&self, checkpoint: Position, head: Position) -> String {
        let inner = self.lock();
        let mut t = String::new();
        let gauge = |t: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                t,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n\n"
            );
        };
        gauge(
            &mut t,
            "neonhub_projection_checkpoint",
            "The AgentRun projection's checkpoint: the log position it has applied up to.",
            checkpoint.0,
        );
        gauge(
            &mut t,
            "neonhub_log_head",
            "The log's head: the position the next event will get.",
            head.0,
        );
        gauge(
            &mut t,
            "neonhub_projection_lag",
            "Positions the AgentRun projection is behind the log's head.",
            head.0.saturating_sub(checkpoint.0),
        );
        let state = match inner.state {
            ProjectionState::Following => "following",
            ProjectionState::Retrying { .. } => "retrying",
            ProjectionState::Ahead { .. } => "ahead",
            ProjectionState::Stopped { .. } => "stopped",
        };
        let _ = writeln!(
            t,
            "# HELP neonhub_projection_state The AgentRun projection's state (1 for the current one).\n# TYPE neonhub_projection_state gauge"
        );
        for s in ["ahead", "following", "retrying", "stopped"] {
            let _ = writeln!(
                t,
                "neonhub_projection_state{{state=\"{s}\"}} {}",
                u8::from(s == state)
            );
        }
        let _ = writeln!(
            t,
            "\n# HELP neonhub_projection_errors_total Errors the AgentRun projection met, by kind.\n# TYPE neonhub_projection_errors_total counter"
        );
        for (kind, n) in ERROR_KINDS.iter().zip(inner.errors) {
            let _ = writeln!(t, "neonhub_projection_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            t,
            "\n# HELP neonhub_projection_last_error The kind of the AgentRun projection's last error (1; none before the first).\n# TYPE neonhub_projection_last_error gauge"
        );
        if let Some(kind) = inner.last_error {
            let _ = writeln!(t, "neonhub_projection_last_error{{kind=\"{kind}\"}} 1");
        }
        t.push('\n');
        t
    }
}

/// What is wrong with a table ahead of its log and what to do.
pub(crate) fn ahead_message(checkpoint: Position, head: Position) -> String {
    format!(
        "the AgentRun table's checkpoint {checkpoint} is past the log's head {head}: the table \
         holds events this log does not (an older log restored, or its tail cut), so nothing \
         more is applied; if the log is the one to keep, stop neonhub, move the table aside \
         and rebuild it with `neonhub replay`"
    )
}

/// The kind `error` is counted under.
fn kind_of(error: &Error) -> &'static str {
    match error {
        Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            "sqlite_busy"
        }
        Error::Sqlite(_) => "sqlite",
        Error::Store(_) | Error::Io { .. } => "store",
        Error::Apply { .. } => "apply",
        Error::AheadOfLog { .. } => "ahead",
        _ => "other",
    }
}

/// Whether retrying may cure `error`: a busy, locked or failing SQLite file,
/// a failed store read; not an event that does not apply, a table ahead of
/// its log, or a closed store.
pub(crate) fn is_transient(error: &Error) -> bool {
    match error {
        Error::Sqlite(_) | Error::Io { .. } => true,
        Error::Store(e) => !matches!(e, neonhub_events::Error::Closed),
        _ => false,
    }
}
