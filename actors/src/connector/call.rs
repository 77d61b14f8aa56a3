//! Connector calls as steps: each call an agent attempt makes has a key
//! (named by the agent, or `<connector>.<operation>#<n>`) and is recorded as
//! a child run (kind connector, parent = the agent run, same correlation)
//! whose id is derived from the parent's id and the key. A retried attempt
//! therefore finds the step's record again and replays it: a finished step
//! returns its recorded outcome without calling the connector. A request
//! that may have reached the vendor is sent again only when the operation is
//! safe to repeat; otherwise the connector first looks it up at the vendor
//! (`Connector::reconcile`): found, the step succeeds with what the vendor
//! reports; not found or not checkable, the step ends `in_doubt`. A step
//! is recorded once its rate-limit permits came, just before its request
//! leaves, so a step that only waited for its turn is never in doubt; a
//! request that failed without effect is recorded as failed before the
//! wait to retry it, so a step stopped during that wait is sent again, not
//! put in doubt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use neonhub_events::{
    Codec, ErrorKind, NodeId, RecordedEvent, RunError, RunEvent, RunId, RunKind, RunStarted,
    RunState, SharedStore, StepOutcome, Timestamp,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::actor::{ConnectorActor, Failure, Guard, Health, Request, Restart};
use super::{BreakerState, CallError, Connector, Reconciled, StepRef};
use crate::journal::{Next, RunJournal, read_run};
use crate::retry::{RetryPolicy, wait_until};

pub(crate) struct ConnectorEntry {
    /// Answers the breaker's health; restarted (and counted) after a panic.
    pub(crate) addr: Addr<ConnectorActor>,
    /// What every request passes: rate limits, breaker, timeout, panics.
    pub(crate) guard: Arc<Guard>,
    pub(crate) retry: RetryPolicy,
    /// The connector's timeout, which also bounds looking a step up.
    pub(crate) timeout: Duration,
    /// Asked which operations are safe to repeat, and to look up a step in
    /// doubt.
    pub(crate) connector: Arc<dyn Connector>,
    /// How often its actor restarted after a panic.
    pub(crate) restarts: Arc<AtomicU64>,
}

/// What every agent context shares: the store and the connector actors.
pub(crate) struct Runtime {
    pub(crate) store: SharedStore,
    pub(crate) codec: Codec,
    pub(crate) connectors: HashMap<String, ConnectorEntry>,
    /// This node, named in every `RunStarted` it appends.
    pub(crate) node: Option<NodeId>,
}

/// One connector call of an agent run, as a step.
pub(crate) struct Step<'a> {
    pub(crate) connector: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) key: &'a str,
    pub(crate) parent: RunId,
    /// The step's own run: `parent.step(key)`, derived once.
    pub(crate) run_id: RunId,
    pub(crate) correlation_id: Uuid,
    /// The calling attempt's: cancelled when it is cut off.
    pub(crate) cancel: &'a CancellationToken,
    /// The calling attempt (1 for the first). A later attempt (a retry, a
    /// resume) looks for the step's record before trying to start it.
    pub(crate) attempt: u32,
    /// When the calling attempt times out, if it does: the step waits for a
    /// rate-limit permit or a vendor's `Retry-After` only until then.
    pub(crate) deadline: Option<tokio::time::Instant>,
}

impl Step<'_> {
    /// The step's run id: the same for the same parent and key, always.
    pub(crate) fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The step as its connector sees it; `started_at` is its first
    /// `RunStarted`'s.
    fn step_ref(&self, started_at: Timestamp) -> StepRef {
        StepRef {
            key: self.key.to_owned(),
            run_id: self.run_id(),
            started_at,
        }
    }
}

fn store_failure(run_id: Option<RunId>, e: impl std::fmt::Display) -> CallError {
    CallError::new(
        run_id,
        ErrorKind::Connector,
        format!("the connector call could not be recorded: {e}"),
        true,
    )
}

/// The message of a step left in doubt by `what`, after looking it up at
/// the vendor gave `looked_up`.
fn in_doubt(step: &Step<'_>, what: &str, looked_up: &str) -> String {
    format!(
        "step {:?} ({} {}) may have reached the vendor ({what}); {looked_up}; it is not sent \
         again automatically: check with the vendor, then resolve the step",
        step.key, step.connector, step.operation
    )
}

/// How a step in doubt was settled with its vendor.
enum Settled {
    /// The vendor has it: the step's output.
    Sent(Value),
    /// Still in doubt: what looking it up gave, for the message.
    InDoubt(String),
}

impl Runtime {
    /// The breaker state of connector `name`, `None` if there is no such
    /// connector or it stopped.
    pub(crate) async fn health(&self, name: &str) -> Option<BreakerState> {
        let entry = self.connectors.get(name)?;
        entry.addr.send(Health).await.ok()
    }

    /// Each connector's name and how often its actor restarted, by name.
    pub(crate) fn restarts(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .connectors
            .iter()
            .map(|(name, entry)| (name.clone(), entry.restarts.load(Ordering::Relaxed)))
            .collect();
        all.sort();
        all
    }

    /// Runs `step` on `input`: replays its record if it has one, else
    /// executes it as a new child run.
    pub(crate) async fn call(&self, step: Step<'_>, input: Value) -> Result<Value, CallError> {
        let Some(entry) = self.connectors.get(step.connector) else {
            return Err(CallError::new(
                None,
                ErrorKind::Connector,
                format!("no connector is named {:?}", step.connector),
                false,
            ));
        };
        if step.cancel.is_cancelled() {
            // The attempt is over: the step does not begin, nothing is recorded.
            return Err(CallError::new(
                None,
                ErrorKind::Cancelled,
                format!(
                    "step {:?} was not started: its attempt was cut off",
                    step.key
                ),
                false,
            ));
        }
        let started = RunStarted {
            run_id: step.run_id(),
            kind: RunKind::Connector,
            target: step.connector.to_owned(),
            operation: step.operation.to_owned(),
            intent: None,
            input: input.clone(),
            attempt: 1,
            parent_run_id: Some(step.parent),
            correlation_id: step.correlation_id,
            started_at: Timestamp::now(),
            request_digest: None,
            step: Some(step.key.to_owned()),
            resumed: false,
            node: self.node.clone(),
            paused_micros: 0,
        };
        let run_id = started.run_id;
        let step_ref = step.step_ref(started.started_at);
        if step.attempt > 1 {
            // A read, not a refused append, finds a step an earlier attempt
            // recorded: no round trip through the log's writer.
            let recorded = self.read_step(run_id).await?;
            if !recorded.is_empty() {
                return self.replay(entry, &step, input, recorded).await;
            }
        }
        // The permits first: the step is recorded when its request is about
        // to leave, so a crash while it waits leaves no step that may have
        // reached the vendor, and the next attempt sends it.
        let admitted = admit(entry, &step, &input).await;
        let (store, codec) = (self.store.clone(), self.codec.clone());
        let recorded = match &admitted {
            Ok(()) => RunJournal::start(store, codec, started).await,
            Err(f) => RunJournal::start_refused(store, codec, started, f.run_error()).await,
        };
        let journal = match recorded {
            Ok(journal) => journal,
            Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                let recorded = self.read_step(run_id).await?;
                return self.replay(entry, &step, input, recorded).await;
            }
            Err(e) => return Err(store_failure(None, e)),
        };
        if let Err(f) = admitted {
            return Err(f.into_call_error(run_id));
        }
        self.execute(entry, &step, &step_ref, journal, input, None)
            .await
            .map_err(|e| match e {
                Executed::Store(e) => store_failure(Some(run_id), e),
                Executed::Failed(e) => e,
            })
    }

    /// The recorded events of step `run_id`, none if it never started.
    async fn read_step(&self, run_id: RunId) -> Result<Vec<RecordedEvent>, CallError> {
        read_run(&self.store, run_id)
            .await
            .map_err(|e| store_failure(Some(run_id), e))
    }

    /// A step whose stream exists: its recorded outcome if it finished
    /// (for a step resolved `sent`, the operator's decision); executed again
    /// if an operator resolved it `not_sent` or it was cancelled before its
    /// request left (no effect); if it is in doubt, executed again when safe
    /// to repeat, else looked up at the vendor: recorded as succeeded if the
    /// vendor has it, else closed as `in_doubt`.
    async fn replay(
        &self,
        entry: &ConnectorEntry,
        step: &Step<'_>,
        input: Value,
        recorded: Vec<RecordedEvent>,
    ) -> Result<Value, CallError> {
        let run_id = step.run_id();
        let state = RunState::from_stream(&self.codec, &recorded)
            .map_err(|e| store_failure(Some(run_id), e))?;
        let (Some(state), Some(last)) = (state, recorded.last()) else {
            return Err(store_failure(Some(run_id), "the step's stream is empty"));
        };
        let cancelled = state.may_reopen() && !state.is_in_doubt();
        if let (Some(result), false) = (state.result(), cancelled) {
            return match result {
                Ok(output) => Ok(output.clone()),
                Err(error) => Err(CallError::new(
                    Some(run_id),
                    error.kind,
                    error.message.clone(),
                    false,
                )),
            };
        }
        let last_event = self.codec.decode(last);
        let resolved_not_sent = matches!(
            &last_event,
            Ok(RunEvent::StepResolved(r)) if r.outcome == StepOutcome::NotSent
        );
        // A failure that will be retried is recorded only when its request
        // certainly had no effect or is safe to repeat (see `execute`).
        let waiting_to_retry = match &last_event {
            Ok(RunEvent::Failed(f)) => f.retry_due().map(|due| (f.finished_at, due)),
            _ => None,
        };
        let idle_since = waiting_to_retry
            .map(|(failed, _)| failed)
            .or(state.finished_at);
        let step_ref = step.step_ref(state.started_at);
        // What the request carried, to look it up by.
        let sent_input = state.input.clone();
        let mut journal = RunJournal::resume(
            self.store.clone(),
            self.codec.clone(),
            state,
            last.revision,
            last.metadata,
        );
        let safe = entry.connector.is_safe_to_repeat(step.operation);
        let outcome = if resolved_not_sent || cancelled || waiting_to_retry.is_some() {
            // An operator found the vendor never got it, it was cut off
            // before its request left, or it stopped while it waited to
            // retry a request without effect: send it now, its next attempt
            // begun once its permits came (as a new step is started).
            if let Some((_, due)) = waiting_to_retry {
                // What is left of its wait (a vendor's `Retry-After`): a
                // crash does not shorten it. Cut off meanwhile, its next
                // attempt is refused as cut off.
                wait_until(due, step.cancel.cancelled()).await;
            }
            let node = self.node.clone();
            let next = Next::Resume { node, idle_since };
            self.execute(entry, step, &step_ref, journal, input, Some(next))
                .await
        } else if safe {
            let failed = journal.failed_attempt(
                RunError::new(
                    ErrorKind::InDoubt,
                    "the step was found without an outcome; it is safe to repeat, so it runs again",
                ),
                Duration::ZERO,
            );
            match journal.will_retry(failed).await {
                Ok(()) => {
                    self.execute(entry, step, &step_ref, journal, input, Some(Next::Retry))
                        .await
                }
                Err(e) => Err(Executed::Store(e)),
            }
        } else {
            let what = "it was found started without an outcome";
            self.settle(entry, step, &step_ref, &sent_input, what, journal)
                .await
        };
        outcome.map_err(|e| match e {
            // Another call of the same step got there first: its record wins.
            Executed::Store(crate::Error::Store(neonhub_events::Error::WrongExpectedVersion {
                ..
            })) => store_failure(Some(run_id), "another call of this step is recording it"),
            Executed::Store(e) => store_failure(Some(run_id), e),
            Executed::Failed(e) => e,
        })
    }

    /// Sends the step's requests, retrying where that cannot duplicate its
    /// effect, and records the outcome in `journal`. `next`: how its next
    /// attempt begins, once that attempt's rate-limit permits came; `None`
    /// when the current one is begun (recorded after its permits).
    async fn execute(
        &self,
        entry: &ConnectorEntry,
        step: &Step<'_>,
        step_ref: &StepRef,
        mut journal: RunJournal,
        input: Value,
        mut next: Option<Next>,
    ) -> Result<Value, Executed> {
        let safe = entry.connector.is_safe_to_repeat(step.operation);
        loop {
            if let Some(next) = next.take() {
                let admitted = admit(entry, step, &input).await;
                let refused = admitted.as_ref().err().map(Failure::run_error);
                journal
                    .begin_attempt(next, refused)
                    .await
                    .map_err(Executed::Store)?;
                if let Err(f) = admitted {
                    return Err(Executed::Failed(f.into_call_error(journal.run_id())));
                }
            }
            let request = Request {
                step: step_ref,
                operation: step.operation,
                input: &input,
                cancel: step.cancel,
            };
            let (result, panicked) = entry.guard.send(&request).await;
            if panicked {
                entry.addr.do_send(Restart);
            }
            let f = match result {
                Ok(output) => {
                    journal
                        .finish(journal.success(output))
                        .await
                        .map_err(Executed::Store)?;
                    return Ok(journal.into_output());
                }
                Err(f) => f,
            };
            let repeatable = safe || !f.maybe_sent;
            // The vendor's `Retry-After`, if longer than our backoff. A wait
            // the vendor asks for past the run's deadline is not waited: the
            // step fails now (our own backoff is cut off with the attempt,
            // and the next attempt executes the step again).
            let backoff = entry
                .retry
                .backoff(journal.attempt())
                .max(f.retry_after.unwrap_or_default());
            let past_deadline = f.retry_after.is_some()
                && step
                    .deadline
                    .is_some_and(|deadline| tokio::time::Instant::now() + backoff >= deadline);
            if f.retryable
                && repeatable
                && entry.retry.allows_retry_after(journal.attempt())
                && past_deadline
            {
                let message = format!(
                    "{}; the vendor asks to wait {backoff:?}, past the run's deadline",
                    f.message
                );
                return Err(fail(&mut journal, f.kind, message, false).await);
            }
            if f.retryable && repeatable && entry.retry.allows_retry_after(journal.attempt()) {
                // Recorded before the wait, not after: a crash while the
                // step waits leaves a request known to be without effect (or
                // safe to repeat), which the next attempt sends again
                // instead of putting it in doubt.
                let failed = journal.failed_attempt(RunError::new(f.kind, f.message), backoff);
                journal.will_retry(failed).await.map_err(Executed::Store)?;
                // Cut off while it waits: its next attempt is refused as
                // cut off before its request left, and nothing goes out.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = step.cancel.cancelled() => {}
                }
                next = Some(Next::Retry);
                continue;
            }
            if f.maybe_sent && !safe {
                return self
                    .settle(entry, step, step_ref, &input, &f.message, journal)
                    .await;
            }
            return Err(fail(&mut journal, f.kind, f.message, f.retryable).await);
        }
    }

    /// Ends a step whose request may have reached the vendor (`what` says
    /// why) and is not safe to repeat: looks it up at the vendor, then
    /// records it as succeeded with what the vendor reports, or as
    /// `in_doubt`.
    async fn settle(
        &self,
        entry: &ConnectorEntry,
        step: &Step<'_>,
        step_ref: &StepRef,
        input: &Value,
        what: &str,
        mut journal: RunJournal,
    ) -> Result<Value, Executed> {
        match self.look_up(entry, step, step_ref, input).await {
            Settled::Sent(output) => {
                journal
                    .finish(journal.success(output))
                    .await
                    .map_err(Executed::Store)?;
                Ok(journal.into_output())
            }
            Settled::InDoubt(looked_up) => {
                let message = in_doubt(step, what, &looked_up);
                Err(fail(&mut journal, ErrorKind::InDoubt, message, false).await)
            }
        }
    }

    /// Asks the step's connector whether the vendor has the step, within
    /// the connector's timeout and while the step's attempt goes on.
    async fn look_up(
        &self,
        entry: &ConnectorEntry,
        step: &Step<'_>,
        step_ref: &StepRef,
        input: &Value,
    ) -> Settled {
        if step.cancel.is_cancelled() {
            // The attempt is over: its steps record how they ended now.
            return Settled::InDoubt("it was not looked up: its attempt was cut off".to_owned());
        }
        let look = entry.connector.reconcile(step_ref, step.operation, input);
        let answer = tokio::select! {
            answer = tokio::time::timeout(entry.timeout, look) => answer,
            () = step.cancel.cancelled() => {
                return Settled::InDoubt(
                    "looking it up was cut off with its attempt".to_owned(),
                );
            }
        };
        match answer {
            Ok(Reconciled::Found(output)) => Settled::Sent(output),
            Ok(Reconciled::NotFound) => {
                Settled::InDoubt("the vendor, asked, has no record of it".to_owned())
            }
            Ok(Reconciled::Unchecked(why)) => {
                Settled::InDoubt(format!("it could not be looked up: {why}"))
            }
            Err(_) => Settled::InDoubt(format!(
                "it could not be looked up: no answer within {:?}",
                entry.timeout
            )),
        }
    }
}

/// Waits for the permits of `step`'s next request (see [`Guard::admit`]).
async fn admit(entry: &ConnectorEntry, step: &Step<'_>, input: &Value) -> Result<(), Failure> {
    entry
        .guard
        .admit(step.operation, input, step.cancel, step.deadline)
        .await
}

/// Records the step's terminal failure (`kind`, `message`) in `journal`;
/// the caller gets it back as a [`CallError`] once it is durable.
async fn fail(
    journal: &mut RunJournal,
    kind: ErrorKind,
    message: String,
    retryable: bool,
) -> Executed {
    let error = RunError::new(kind, message.clone());
    match journal.finish(journal.failure(error)).await {
        Ok(()) => Executed::Failed(CallError::new(
            Some(journal.run_id()),
            kind,
            message,
            retryable,
        )),
        Err(e) => Executed::Store(e),
    }
}

/// Why executing a step did not give its output.
enum Executed {
    /// The step's record could not be appended.
    Store(crate::Error),
    /// The step failed, and its failure is recorded.
    Failed(CallError),
}
