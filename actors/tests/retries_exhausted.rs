//! Given an agent that always fails retryably and a policy of two attempts,
//! when a run is submitted, then the last attempt's failure is terminal.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, OrchestratorBuilder, RetryPolicy, SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::{Value, json};

struct Broken;

#[async_trait]
impl Agent for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    async fn run(&self, _input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        Err(AgentError::retryable("still broken"))
    }
}

#[actix::test]
async fn the_last_attempt_fails_terminally() {
    let store = support::memory_store();
    let options = AgentOptions {
        retry: RetryPolicy::attempts(2, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Broken, options)
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent("broken", json!(null)))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.result.clone().unwrap_err().kind, ErrorKind::Agent);
    let events = support::events(&store, outcome.run_id).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(agent, will retry)",
            "started#2",
            "failed#2(agent)"
        ]
    );
}
