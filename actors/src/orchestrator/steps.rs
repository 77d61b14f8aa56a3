//! Steps called from outside the process ([`CallStep`]): an agent served
//! over HTTP calls connectors through the run's running attempt, as journaled
//! steps with every guarantee of a built-in agent's (replay on a retry or a
//! resume, in-doubt handling, nothing after the attempt's outcome).

use actix::prelude::*;
use neonhub_events::RunId;
use serde_json::Value;
use uuid::Uuid;

use super::Orchestrator;
use crate::connector::CallError;

/// Call step `key` (`connector`.`operation` on `input`) in the running
/// attempt of run `run_id`. `attempt`, if given, must be the running one.
/// `token`, if given, must be that attempt's step token (what an HTTP agent
/// was handed); `None` means the caller was authenticated otherwise.
#[derive(Clone, Debug)]
pub struct CallStep {
    /// The agent run.
    pub run_id: RunId,
    /// The attempt the caller belongs to, if it says.
    pub attempt: Option<u32>,
    /// The attempt's step token, as presented.
    pub token: Option<Uuid>,
    /// The step's key, unique within the run and stable across attempts.
    pub key: String,
    /// The connector to call.
    pub connector: String,
    /// Its operation.
    pub operation: String,
    /// The operation's input (recorded: no credentials).
    pub input: Value,
}

impl Message for CallStep {
    type Result = Result<Value, StepCallError>;
}

/// Why a [`CallStep`] did not give the step's output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepCallError {
    /// No attempt of the run is running on this node: it finished, it is
    /// between two attempts, it never started, or another node runs it.
    #[error(
        "run {0} has no attempt running on this node (it finished, waits for a retry, \
         or never started): steps can only be called during an attempt"
    )]
    NotRunning(RunId),
    /// The caller's attempt is over; another one runs now, or none.
    #[error("attempt {attempt} of run {run_id} is over{}", .current.map(|c| format!(" (attempt {c} runs now)")).unwrap_or_default())]
    AttemptOver {
        /// The run.
        run_id: RunId,
        /// The caller's attempt.
        attempt: u32,
        /// The attempt running now, if one is.
        current: Option<u32>,
    },
    /// The step token is not the running attempt's.
    #[error("wrong step token for run {0}: use the steps_url and token of the running attempt")]
    WrongToken(RunId),
    /// No connector has this name.
    #[error("no connector is named {0:?}")]
    UnknownConnector(String),
    /// The step ran and failed (or replayed its recorded failure).
    #[error("{0}")]
    Failed(CallError),
}

/// Whether two step tokens are equal, in time independent of where they
/// differ.
fn same_token(a: Uuid, b: Uuid) -> bool {
    a.as_bytes()
        .iter()
        .zip(b.as_bytes())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

impl Handler<CallStep> for Orchestrator {
    type Result = ResponseFuture<Result<Value, StepCallError>>;

    fn handle(&mut self, msg: CallStep, _ctx: &mut Context<Self>) -> Self::Result {
        let started = (|| {
            let run_id = msg.run_id;
            let ctx = self
                .running
                .get(run_id)
                .and_then(|control| control.attempt())
                .ok_or(StepCallError::NotRunning(run_id))?;
            if let Some(token) = msg.token
                && !same_token(token, ctx.step_token())
            {
                return Err(StepCallError::WrongToken(run_id));
            }
            if let Some(attempt) = msg.attempt
                && attempt != ctx.attempt()
            {
                return Err(StepCallError::AttemptOver {
                    run_id,
                    attempt,
                    current: Some(ctx.attempt()),
                });
            }
            if !self.runtime.connectors.contains_key(&msg.connector) {
                return Err(StepCallError::UnknownConnector(msg.connector.clone()));
            }
            ctx.start_step(msg.key, &msg.connector, &msg.operation, msg.input)
                .ok_or(StepCallError::AttemptOver {
                    run_id,
                    attempt: ctx.attempt(),
                    current: None,
                })
        })();
        Box::pin(async move { started?.await.map_err(StepCallError::Failed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let a = Uuid::new_v4();
        let mut b = *a.as_bytes();
        assert!(same_token(a, Uuid::from_bytes(b)));
        b[15] ^= 1;
        assert!(!same_token(a, Uuid::from_bytes(b)));
    }
}
