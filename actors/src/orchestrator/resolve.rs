//! An operator's decision on a step that ended `in_doubt`
//! ([`ResolveStep`]): recorded in the step's stream, then the run is resumed
//! from its journal, where the step replays as decided.

use std::sync::Arc;

use actix::prelude::*;
use neonhub_events::{RunEvent, RunId, RunKind, RunStatus, StepOutcome, StepResolved, Timestamp};

use super::{Orchestrator, execute};
use crate::error::{Error, Result};
use crate::journal::open_journal;

/// Settle step `step` of run `run_id`, which ended `in_doubt`: `Sent` (the
/// vendor did it; the step succeeds with the decision as its output) or
/// `NotSent` (it is executed again). The decision is appended to the step's
/// stream with who made it, when and why; then the run, which ended
/// `in_doubt`, gets a new attempt (`RunStarted{resumed}`) on this node,
/// where its finished steps replay. Sending the same decision again, after
/// a crash between the two appends, only resumes the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveStep {
    /// The agent run.
    pub run_id: RunId,
    /// The step's key within it (`notify-owner`, `twilio.send_sms#1`).
    pub step: String,
    /// What the operator found out.
    pub outcome: StepOutcome,
    /// Who decided.
    pub decided_by: String,
    /// Why, if given.
    pub reason: Option<String>,
}

impl Message for ResolveStep {
    /// The run's new attempt, started. [`Error::UnknownRun`] (no such run),
    /// [`Error::UnknownStep`] (the run has no step with this key),
    /// [`Error::StepNotInDoubt`] (the step did not end `in_doubt`, or was
    /// resolved otherwise), [`Error::RunFinished`] or
    /// [`Error::RunInProgress`] (the run did not end `in_doubt`).
    type Result = Result<u32>;
}

impl Handler<ResolveStep> for Orchestrator {
    type Result = ResponseFuture<Result<u32>>;

    fn handle(&mut self, msg: ResolveStep, _ctx: &mut Context<Self>) -> Self::Result {
        let runtime = Arc::clone(&self.runtime);
        let running = self.running.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let agents: Vec<_> = self
            .agents
            .iter()
            .map(|(name, e)| (name.clone(), e.handle.clone(), e.options))
            .collect();
        Box::pin(async move {
            let (store, codec) = (&runtime.store, &runtime.codec);
            let run_id = msg.run_id;
            let (mut run, _) = open_journal(store, codec, run_id)
                .await?
                .filter(|(j, _)| j.state().kind == RunKind::Agent)
                .ok_or(Error::UnknownRun(run_id))?;
            let step_id = run_id.step(&msg.step);
            let (mut step, last) = open_journal(store, codec, step_id)
                .await?
                .filter(|(j, _)| j.state().parent_run_id == Some(run_id))
                .ok_or_else(|| Error::UnknownStep {
                    run_id,
                    step: msg.step.clone(),
                })?;
            let not_in_doubt = |status| Error::StepNotInDoubt {
                run_id,
                step: msg.step.clone(),
                status,
            };
            let step_state = step.state();
            // The same decision already recorded (its last event), the run
            // not resumed yet: a retry after a crash between the two.
            let decided_before = match &last {
                RunEvent::StepResolved(r) => r.outcome == msg.outcome,
                _ => false,
            };
            if !step_state.is_in_doubt() && !decided_before {
                return Err(not_in_doubt(step_state.status));
            }
            let state = run.state();
            if !state.is_in_doubt() {
                return Err(if state.is_finished() {
                    Error::RunFinished {
                        run_id,
                        status: state.status,
                    }
                } else {
                    Error::RunInProgress(run_id)
                });
            }
            let (_, agent, options) = agents
                .into_iter()
                .find(|(name, ..)| *name == state.target)
                .ok_or_else(|| Error::UnknownAgent(state.target.clone()))?;
            if !decided_before {
                let resolved = StepResolved {
                    run_id: step_id,
                    step: msg.step.clone(),
                    outcome: msg.outcome,
                    decided_by: msg.decided_by,
                    reason: msg.reason,
                    decided_at: Timestamp::now(),
                };
                step.resolve(resolved).await.map_err(|e| match e {
                    Error::Store(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                        not_in_doubt(RunStatus::Running)
                    }
                    e => e,
                })?;
            }
            run.reopen(runtime.node.clone())
                .await
                .map_err(|e| match e {
                    Error::Store(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                        Error::RunInProgress(run_id)
                    }
                    e => e,
                })?;
            let attempt = run.attempt();
            // Like a resumed run: counted in flight, not refused by the bound.
            let slot = in_flight.acquire(usize::MAX).expect("no bound");
            let control = running.register(run_id);
            actix::spawn(async move {
                let _slot = slot;
                match execute(run, agent, options, runtime, control).await {
                    Ok(outcome) => tracing::info!(
                        %run_id,
                        succeeded = outcome.is_success(),
                        "run resumed after a step was resolved finished"
                    ),
                    Err(e) => tracing::error!(%run_id, "resumed run could not be recorded: {e}"),
                }
            });
            Ok(attempt)
        })
    }
}
