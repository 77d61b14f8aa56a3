//! Given an agent that returns a (non-retryable) error, when a run is
//! submitted, then the store holds RunStarted and one terminal
//! RunFailed{agent}, even though the agent's policy allows retries.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, OrchestratorBuilder, RetryPolicy, SubmitRun,
};
use neonhub_events::{ErrorKind, RunEvent};
use neonhub_test_support as support;
use serde_json::{Value, json};

struct Refuser;

#[async_trait]
impl Agent for Refuser {
    fn name(&self) -> &str {
        "refuser"
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        Err(AgentError::new(format!("cannot do {input}")))
    }
}

#[actix::test]
async fn an_agent_error_is_recorded_as_a_terminal_run_failed() {
    let store = support::memory_store();
    let options = AgentOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Refuser, options)
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent("refuser", json!("the impossible")))
        .await
        .unwrap()
        .unwrap();

    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Agent);
    assert_eq!(error.message, "cannot do \"the impossible\"");
    let events = support::events(&store, outcome.run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "failed#1(agent)"]);
    let RunEvent::Failed(failed) = &events[1] else {
        panic!("{events:?}")
    };
    assert!(!failed.will_retry);
    assert_eq!(failed.error, error);
    support::assert_contiguous(&support::recorded(&store, outcome.run_id).await);
}
