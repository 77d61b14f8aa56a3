//! A run's state derived from its events: the one fold that the journal,
//! start-up recovery, the AgentRun table and the HTTP answers all build on.
//!
//! [`RunState`] holds what the log says about one run (the columns of the
//! audit table). [`RunState::start`] takes the stream's first event,
//! [`RunState::apply`] every later one, and refuses an event that does not
//! fit the stream grammar (`RunStarted{1}`, then (`RunFailed{will_retry}`,
//! `RunStarted{n+1}`)*, then one terminal event) with a [`FoldError`].
//!
//! `duration_micros` runs from the first `RunStarted.started_at` to the
//! terminal event's `finished_at`, so it includes retries and the waits
//! between them (each event's own `duration_micros` is one attempt only),
//! less the time the run was not executing: a process that was down before
//! a resume, an operator's decision awaited (`RunStarted.paused_micros`).
//! `error` holds the error of the last failed attempt: on a failed run the
//! terminal error, on a run that succeeded after retries the last retried
//! failure, and nothing on a run that never failed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::ids::{Position, RunId, Timestamp};
use crate::run::{RunError, RunEvent, RunKind, RunStarted};
use crate::store::RecordedEvent;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started (or waiting for a retry), no terminal event yet.
    Running,
    /// Ended with `RunSucceeded`.
    Succeeded,
    /// Ended with `RunFailed{will_retry: false}`.
    Failed,
}

impl RunStatus {
    /// Every status, in the order above.
    pub const ALL: [RunStatus; 3] = [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed];

    /// The lower-case name stored in the table (`running`, `succeeded`, `failed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`RunStatus`]; the message lists the valid ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}; expected running, succeeded or failed")]
pub struct UnknownRunStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> std::result::Result<Self, UnknownRunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_owned()))
    }
}

/// An event that does not fit its run's stream. The log holds a run that
/// the fold cannot replay: damaged data or a bug in a writer; report it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FoldError {
    /// The stream does not begin with `RunStarted{attempt: 1}`.
    #[error("run {run_id} has no RunStarted{{attempt: 1}} before this event")]
    NotStarted {
        /// The run.
        run_id: RunId,
    },
    /// A second `RunStarted{attempt: 1}`.
    #[error("a second RunStarted{{attempt: 1}} for run {run_id}")]
    StartedTwice {
        /// The run.
        run_id: RunId,
    },
    /// An event after the terminal one.
    #[error("run {run_id} already finished ({status}) at position {at}")]
    AlreadyFinished {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: RunStatus,
        /// The position of its terminal event.
        at: Position,
    },
    /// A `RunStarted` whose attempt is not the next one.
    #[error("RunStarted attempt {found} after attempt {attempts} of run {run_id}")]
    AttemptOutOfOrder {
        /// The run.
        run_id: RunId,
        /// The attempt the event claims.
        found: u32,
        /// The attempts started before it.
        attempts: u32,
    },
    /// A `StepResolved` for a run that is not a step that ended `in_doubt`.
    #[error(
        "run {run_id} is not a step that ended in_doubt ({status}); only such a step is resolved"
    )]
    NotInDoubt {
        /// The run.
        run_id: RunId,
        /// Where it stands.
        status: RunStatus,
    },
    /// An event of another run.
    #[error("the event is for run {found} but the stream is run {run_id}'s")]
    OtherRun {
        /// The stream's run.
        run_id: RunId,
        /// The event's run.
        found: RunId,
    },
}

/// Everything the log says about one run: the row of the AgentRun table.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// The run.
    pub run_id: RunId,
    /// The agent run that made this connector call.
    pub parent_run_id: Option<RunId>,
    /// The root request.
    pub correlation_id: Uuid,
    /// Agent or connector.
    pub kind: RunKind,
    /// The agent or connector name.
    pub target: String,
    /// `run` for agents; `send`, `post_message`, ... for connectors.
    pub operation: String,
    /// The intent the run was routed by.
    pub intent: Option<String>,
    /// Running until the terminal event.
    pub status: RunStatus,
    /// The number of attempts started so far.
    pub attempts: u32,
    /// The input of the first attempt.
    pub input: Value,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The error of the last failed attempt (see the module docs).
    pub error: Option<RunError>,
    /// When the first attempt began.
    pub started_at: Timestamp,
    /// When the terminal event happened.
    pub finished_at: Option<Timestamp>,
    /// From the first start to the terminal event, in microseconds, less
    /// the time the run was not executing (`paused_micros`).
    pub duration_micros: Option<u64>,
    /// How long the run was not executing between its first start and now:
    /// the sum of its attempts' `RunStarted.paused_micros` (a process that
    /// was down, an operator's decision awaited).
    pub paused_micros: u64,
    /// The log position of the run's first event (provenance).
    pub first_position: Position,
    /// The log position of the last event applied (provenance).
    pub last_position: Position,
}

impl RunState {
    /// The state after the run's first event, `started` (attempt 1) at
    /// `position`.
    ///
    /// # Errors
    /// [`FoldError::NotStarted`] for a later attempt.
    pub fn start(started: RunStarted, position: Position) -> std::result::Result<Self, FoldError> {
        if started.attempt != 1 {
            return Err(FoldError::NotStarted {
                run_id: started.run_id,
            });
        }
        Ok(RunState {
            run_id: started.run_id,
            parent_run_id: started.parent_run_id,
            correlation_id: started.correlation_id,
            kind: started.kind,
            target: started.target,
            operation: started.operation,
            intent: started.intent,
            status: RunStatus::Running,
            attempts: 1,
            input: started.input,
            output: None,
            error: None,
            started_at: started.started_at,
            finished_at: None,
            duration_micros: None,
            paused_micros: started.paused_micros,
            first_position: position,
            last_position: position,
        })
    }

    /// Applies the run's next event, recorded at `position`; returns whether
    /// it ended the run. On an error the state is unchanged.
    ///
    /// # Errors
    /// A [`FoldError`] for an event that does not follow the stream so far.
    pub fn apply(
        &mut self,
        event: RunEvent,
        position: Position,
    ) -> std::result::Result<bool, FoldError> {
        let run_id = self.run_id;
        if event.run_id() != run_id {
            return Err(FoldError::OtherRun {
                run_id,
                found: event.run_id(),
            });
        }
        if self.status != RunStatus::Running {
            return self.apply_after_end(event, position);
        }
        let finished = match event {
            RunEvent::Started(s) if s.attempt == 1 => {
                return Err(FoldError::StartedTwice { run_id });
            }
            RunEvent::Started(s) => {
                if s.attempt != self.attempts + 1 {
                    return Err(FoldError::AttemptOutOfOrder {
                        run_id,
                        found: s.attempt,
                        attempts: self.attempts,
                    });
                }
                self.attempts = s.attempt;
                self.paused_micros = self.paused_micros.saturating_add(s.paused_micros);
                false
            }
            RunEvent::Succeeded(s) => {
                self.status = RunStatus::Succeeded;
                self.output = Some(s.output);
                self.finish(s.finished_at);
                true
            }
            RunEvent::Failed(f) => {
                self.error = Some(f.error);
                if !f.will_retry {
                    self.status = RunStatus::Failed;
                    self.finish(f.finished_at);
                }
                !f.will_retry
            }
            RunEvent::StepResolved(_) => {
                return Err(FoldError::NotInDoubt {
                    run_id,
                    status: self.status,
                });
            }
        };
        self.last_position = position;
        Ok(finished)
    }

    /// What the run used of a language model: for a connector run that
    /// succeeded with an output reporting it ([`crate::Usage::from_output`]).
    pub fn usage(&self) -> Option<crate::Usage> {
        if self.kind != RunKind::Connector || self.status != RunStatus::Succeeded {
            return None;
        }
        self.output.as_ref().and_then(crate::Usage::from_output)
    }

    /// Whether the run ended `in_doubt`: failed on a step that may have
    /// reached its vendor, waiting for an operator's decision.
    pub fn is_in_doubt(&self) -> bool {
        self.status == RunStatus::Failed
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.kind == crate::run::ErrorKind::InDoubt)
    }

    /// Whether a later event may follow this run's terminal one: it ended
    /// `in_doubt` (an operator resolves it), or it is a step that ended
    /// `cancelled` (cut off before its request left, so without effect: a
    /// later attempt of its run executes it again).
    pub fn may_reopen(&self) -> bool {
        self.is_in_doubt()
            || (self.kind == RunKind::Connector
                && self.status == RunStatus::Failed
                && self
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == crate::run::ErrorKind::Cancelled))
    }

    /// The ways on after a terminal event: a run that ended `in_doubt`
    /// takes an operator's [`crate::StepResolved`] (a step) or the
    /// `RunStarted` that resumes it once its step is resolved (an agent
    /// run); a step that ended `cancelled` takes the `RunStarted` of its
    /// next execution. A resolved `sent` step succeeds with the decision as
    /// output; `not_sent` reopens it for its next attempt. Its times stay
    /// those of its execution.
    fn apply_after_end(
        &mut self,
        event: RunEvent,
        position: Position,
    ) -> std::result::Result<bool, FoldError> {
        let run_id = self.run_id;
        let finished = match event {
            RunEvent::StepResolved(r) if self.is_in_doubt() && self.kind == RunKind::Connector => {
                match r.outcome {
                    crate::run::StepOutcome::Sent => {
                        self.status = RunStatus::Succeeded;
                        self.output = Some(r.output());
                        true
                    }
                    crate::run::StepOutcome::NotSent => {
                        self.reopen();
                        false
                    }
                }
            }
            RunEvent::StepResolved(_) => {
                return Err(FoldError::NotInDoubt {
                    run_id,
                    status: self.status,
                });
            }
            RunEvent::Started(s)
                if s.attempt > 1
                    && ((self.is_in_doubt() && self.kind == RunKind::Agent)
                        || (self.may_reopen()
                            && self.kind == RunKind::Connector
                            && !self.is_in_doubt())) =>
            {
                if s.attempt != self.attempts + 1 {
                    return Err(FoldError::AttemptOutOfOrder {
                        run_id,
                        found: s.attempt,
                        attempts: self.attempts,
                    });
                }
                self.reopen();
                self.attempts = s.attempt;
                self.paused_micros = self.paused_micros.saturating_add(s.paused_micros);
                false
            }
            _ => {
                return Err(FoldError::AlreadyFinished {
                    run_id,
                    status: self.status,
                    at: self.last_position,
                });
            }
        };
        self.last_position = position;
        Ok(finished)
    }

    fn reopen(&mut self) {
        self.status = RunStatus::Running;
        self.finished_at = None;
        self.duration_micros = None;
    }

    fn finish(&mut self, at: Timestamp) {
        self.finished_at = Some(at);
        self.duration_micros = Some(
            at.0.saturating_sub(self.started_at.0)
                .saturating_sub(self.paused_micros),
        );
    }

    /// Folds a whole run stream, decoding each event with `codec`; `None`
    /// for an empty stream.
    ///
    /// # Errors
    /// [`Error::Decode`] (and the codec's other errors) for an event that
    /// does not decode, [`Error::InvalidRun`] for one that does not fit.
    pub fn from_stream(codec: &Codec, events: &[RecordedEvent]) -> Result<Option<Self>> {
        let Some((first, rest)) = events.split_first() else {
            return Ok(None);
        };
        let invalid = |recorded: &RecordedEvent, reason| Error::InvalidRun {
            stream: recorded.stream.as_str().to_owned(),
            position: recorded.position,
            reason,
        };
        let mut state = match codec.decode(first)? {
            RunEvent::Started(s) => {
                RunState::start(s, first.position).map_err(|e| invalid(first, e))?
            }
            other => {
                return Err(invalid(
                    first,
                    FoldError::NotStarted {
                        run_id: other.run_id(),
                    },
                ));
            }
        };
        for recorded in rest {
            state
                .apply(codec.decode(recorded)?, recorded.position)
                .map_err(|e| invalid(recorded, e))?;
        }
        Ok(Some(state))
    }

    /// The [`crate::request_digest`] of the run's recorded target and input:
    /// what a resubmission under the same run id must match.
    pub fn request_digest(&self) -> String {
        crate::run::request_digest(&self.target, &self.input)
    }

    /// Whether the run has ended.
    pub fn is_finished(&self) -> bool {
        self.status != RunStatus::Running
    }

    /// How the run ended: its output or its terminal error; `None` while it
    /// is running.
    pub fn result(&self) -> Option<std::result::Result<&Value, &RunError>> {
        match self.status {
            RunStatus::Running => None,
            RunStatus::Succeeded => Some(Ok(self.output.as_ref().unwrap_or(&Value::Null))),
            RunStatus::Failed => self.error.as_ref().map(Err),
        }
    }

    /// The next attempt's `RunStarted` (attempt `attempts + 1`, begun at
    /// `started_at`), for a journal that retries this run.
    pub fn next_attempt(&self, started_at: Timestamp) -> RunStarted {
        RunStarted {
            run_id: self.run_id,
            kind: self.kind,
            target: self.target.clone(),
            operation: self.operation.clone(),
            intent: self.intent.clone(),
            input: self.input.clone(),
            attempt: self.attempts + 1,
            parent_run_id: self.parent_run_id,
            correlation_id: self.correlation_id,
            started_at,
            request_digest: None,
            step: None,
            resumed: false,
            node: None,
            paused_micros: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::run::{ErrorKind, RunFailed, RunSucceeded};

    fn started(run_id: RunId, attempt: u32, at: u64) -> RunEvent {
        RunEvent::Started(RunStarted {
            run_id,
            kind: RunKind::Agent,
            target: "email".into(),
            operation: "run".into(),
            intent: Some("email.send".into()),
            input: json!({"to": "a@example.com"}),
            attempt,
            parent_run_id: None,
            correlation_id: *run_id.as_uuid(),
            started_at: Timestamp(at),
            request_digest: None,
            step: None,
            resumed: false,
            node: None,
            paused_micros: 0,
        })
    }

    fn failed(run_id: RunId, attempt: u32, will_retry: bool, at: u64) -> RunEvent {
        RunEvent::Failed(RunFailed {
            run_id,
            attempt,
            error: RunError::new(ErrorKind::Timeout, format!("attempt {attempt}")),
            will_retry,
            retry_at: None,
            duration_micros: 10,
            finished_at: Timestamp(at),
        })
    }

    fn start(event: RunEvent, position: u64) -> RunState {
        let RunEvent::Started(s) = event else {
            panic!("not a start")
        };
        RunState::start(s, Position(position)).unwrap()
    }

    #[test]
    fn a_retried_run_that_succeeds_keeps_the_last_error_and_the_whole_duration() {
        let id = RunId::new();
        let mut run = start(started(id, 1, 100), 7);
        assert_eq!(run.status, RunStatus::Running);
        assert!(run.result().is_none());
        assert!(!run.apply(failed(id, 1, true, 150), Position(8)).unwrap());
        assert!(!run.apply(started(id, 2, 200), Position(9)).unwrap());
        let done = RunEvent::Succeeded(RunSucceeded {
            run_id: id,
            attempt: 2,
            output: json!({"id": "m-1"}),
            duration_micros: 50,
            finished_at: Timestamp(260),
        });
        assert!(run.apply(done, Position(12)).unwrap());
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(run.attempts, 2);
        assert_eq!(run.duration_micros, Some(160));
        assert_eq!(run.error.as_ref().unwrap().message, "attempt 1");
        assert_eq!(
            (run.first_position, run.last_position),
            (Position(7), Position(12))
        );
        assert_eq!(run.result(), Some(Ok(&json!({"id": "m-1"}))));
    }

    #[test]
    fn events_that_do_not_fit_the_stream_are_refused_and_change_nothing() {
        let id = RunId::new();
        let mut run = start(started(id, 1, 100), 1);
        let before = run.clone();
        let refusals = [
            (started(id, 1, 110), "a second RunStarted"),
            (started(id, 3, 110), "attempt 3 after attempt 1"),
            (started(RunId::new(), 2, 110), "is for run"),
        ];
        for (event, message) in refusals {
            let err = run.apply(event, Position(2)).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
            assert_eq!(run, before);
        }
        assert!(run.apply(failed(id, 1, false, 120), Position(2)).unwrap());
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.result().unwrap().unwrap_err().kind, ErrorKind::Timeout);
        let err = run
            .apply(failed(id, 1, false, 130), Position(3))
            .unwrap_err();
        assert!(matches!(err, FoldError::AlreadyFinished { .. }), "{err}");
        let RunEvent::Started(later) = started(id, 2, 100) else {
            unreachable!()
        };
        assert!(matches!(
            RunState::start(later, Position(0)),
            Err(FoldError::NotStarted { .. })
        ));
    }

    fn resolved(run_id: RunId, outcome: crate::run::StepOutcome) -> RunEvent {
        RunEvent::StepResolved(crate::run::StepResolved {
            run_id,
            step: "notify".into(),
            outcome,
            decided_by: "ops".into(),
            reason: None,
            decided_at: Timestamp(900),
        })
    }

    fn in_doubt(run_id: RunId, attempt: u32) -> RunEvent {
        RunEvent::Failed(RunFailed {
            run_id,
            attempt,
            error: RunError::new(ErrorKind::InDoubt, "may have been sent"),
            will_retry: false,
            retry_at: None,
            duration_micros: 10,
            finished_at: Timestamp(150),
        })
    }

    fn step(run_id: RunId) -> RunState {
        let RunEvent::Started(mut s) = started(run_id, 1, 100) else {
            unreachable!()
        };
        s.kind = RunKind::Connector;
        RunState::start(s, Position(0)).unwrap()
    }

    #[test]
    fn a_step_in_doubt_is_resolved_once_and_only_after_it_ended_in_doubt() {
        use crate::run::StepOutcome::{NotSent, Sent};
        let id = RunId::new();
        let mut running = step(id);
        let err = running.apply(resolved(id, Sent), Position(1)).unwrap_err();
        assert!(matches!(err, FoldError::NotInDoubt { .. }), "{err}");

        let mut sent = step(id);
        assert!(sent.apply(in_doubt(id, 1), Position(1)).unwrap());
        assert!(sent.is_in_doubt());
        assert!(sent.apply(resolved(id, Sent), Position(2)).unwrap());
        assert_eq!(sent.status, RunStatus::Succeeded);
        assert_eq!(sent.output.as_ref().unwrap()["resolved"], "sent");
        assert_eq!(
            sent.finished_at,
            Some(Timestamp(150)),
            "execution time kept"
        );
        let err = sent.apply(resolved(id, NotSent), Position(3)).unwrap_err();
        assert!(matches!(err, FoldError::NotInDoubt { .. }), "{err}");

        let mut not_sent = step(id);
        not_sent.apply(in_doubt(id, 1), Position(1)).unwrap();
        assert!(!not_sent.apply(resolved(id, NotSent), Position(2)).unwrap());
        assert_eq!(not_sent.status, RunStatus::Running);
        assert_eq!(not_sent.finished_at, None);
        let mut again = started(id, 2, 1000);
        if let RunEvent::Started(s) = &mut again {
            s.kind = RunKind::Connector;
        }
        assert!(!not_sent.apply(again, Position(3)).unwrap());
        assert_eq!(not_sent.attempts, 2);
    }

    #[test]
    fn an_agent_run_in_doubt_is_reopened_only_by_its_next_attempt() {
        let id = RunId::new();
        let mut run = start(started(id, 1, 100), 0);
        run.apply(in_doubt(id, 1), Position(1)).unwrap();
        let before = run.clone();
        for (event, message) in [
            (resolved(id, crate::run::StepOutcome::Sent), "not a step"),
            (started(id, 3, 500), "attempt 3 after attempt 1"),
        ] {
            let err = run.apply(event, Position(2)).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
            assert_eq!(run, before);
        }
        assert!(!run.apply(started(id, 2, 500), Position(2)).unwrap());
        assert_eq!((run.status, run.attempts), (RunStatus::Running, 2));

        let mut failed = start(started(id, 1, 100), 0);
        failed.apply(failed_event(id), Position(1)).unwrap();
        let err = failed.apply(started(id, 2, 500), Position(2)).unwrap_err();
        assert!(matches!(err, FoldError::AlreadyFinished { .. }), "{err}");
    }

    fn failed_event(run_id: RunId) -> RunEvent {
        failed(run_id, 1, false, 150)
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
        let err = "done".parse::<RunStatus>().unwrap_err();
        assert!(
            err.to_string()
                .contains("expected running, succeeded or failed")
        );
    }

    #[test]
    fn the_next_attempt_carries_the_run_forward() {
        let id = RunId::new();
        let run = start(started(id, 1, 100), 0);
        let next = run.next_attempt(Timestamp(500));
        assert_eq!(next.attempt, 2);
        assert_eq!(next.started_at, Timestamp(500));
        assert_eq!(RunEvent::Started(next.clone()), {
            let RunEvent::Started(mut s) = started(id, 2, 500) else {
                unreachable!()
            };
            s.started_at = Timestamp(500);
            RunEvent::Started(s)
        });
    }
}
