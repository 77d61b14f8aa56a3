//! Connector calls as child runs: what an agent's context uses to call a
//! connector, recording the call in its own stream (kind connector, parent
//! = the agent run, same correlation), with retries as further attempts.

use std::collections::HashMap;

use actix::Addr;
use neonhub_events::{
    Codec, ErrorKind, RunError, RunId, RunKind, RunStarted, SharedStore, Timestamp,
};
use serde_json::Value;
use uuid::Uuid;

use super::actor::{ConnectorActor, Failure, Health, Invoke};
use super::{BreakerState, CallError};
use crate::journal::RunJournal;
use crate::retry::RetryPolicy;

pub(crate) struct ConnectorEntry {
    pub(crate) addr: Addr<ConnectorActor>,
    pub(crate) retry: RetryPolicy,
}

/// What every agent context shares: the store and the connector actors.
pub(crate) struct Runtime {
    pub(crate) store: SharedStore,
    pub(crate) codec: Codec,
    pub(crate) connectors: HashMap<String, ConnectorEntry>,
}

fn store_failure(run_id: Option<RunId>, e: impl std::fmt::Display) -> CallError {
    CallError::new(
        run_id,
        ErrorKind::Connector,
        format!("the connector call could not be recorded: {e}"),
        true,
    )
}

impl Runtime {
    /// The breaker state of connector `name`, `None` if there is no such
    /// connector or it stopped.
    pub(crate) async fn health(&self, name: &str) -> Option<BreakerState> {
        let entry = self.connectors.get(name)?;
        entry.addr.send(Health).await.ok()
    }

    pub(crate) async fn call(
        &self,
        connector: &str,
        operation: &str,
        input: Value,
        parent: RunId,
        correlation_id: Uuid,
    ) -> Result<Value, CallError> {
        let Some(entry) = self.connectors.get(connector) else {
            return Err(CallError::new(
                None,
                ErrorKind::Connector,
                format!("no connector is named {connector:?}"),
                false,
            ));
        };
        let started = RunStarted {
            run_id: RunId::new(),
            kind: RunKind::Connector,
            target: connector.to_owned(),
            operation: operation.to_owned(),
            intent: None,
            input: input.clone(),
            attempt: 1,
            parent_run_id: Some(parent),
            correlation_id,
            started_at: Timestamp::now(),
            request_digest: None,
        };
        let run_id = started.run_id;
        let mut journal = RunJournal::start(self.store.clone(), self.codec.clone(), started)
            .await
            .map_err(|e| store_failure(None, e))?;
        loop {
            let request = Invoke {
                operation: operation.to_owned(),
                input: input.clone(),
            };
            let result = entry.addr.send(request).await.unwrap_or_else(|_| {
                Err(Failure {
                    kind: ErrorKind::Connector,
                    message: format!("the {connector} connector actor stopped"),
                    retryable: true,
                })
            });
            match result {
                Ok(output) => {
                    journal
                        .finish(journal.success(output.clone()))
                        .await
                        .map_err(|e| store_failure(Some(run_id), e))?;
                    return Ok(output);
                }
                Err(f) if f.retryable && entry.retry.allows_retry_after(journal.attempt()) => {
                    let failed = journal.failed_attempt(RunError::new(f.kind, f.message));
                    tokio::time::sleep(entry.retry.backoff(journal.attempt())).await;
                    journal
                        .retry(failed)
                        .await
                        .map_err(|e| store_failure(Some(run_id), e))?;
                }
                Err(f) => {
                    journal
                        .finish(journal.failure(RunError::new(f.kind, f.message.clone())))
                        .await
                        .map_err(|e| store_failure(Some(run_id), e))?;
                    return Err(CallError::new(Some(run_id), f.kind, f.message, f.retryable));
                }
            }
        }
    }
}
