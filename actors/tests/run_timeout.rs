//! Given an agent that never answers and a short timeout, when a run is
//! submitted, then the store holds RunStarted and RunFailed{timeout}, and
//! the agent keeps serving other runs.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, OrchestratorBuilder, SubmitRun,
};
use neonhub_events::{ErrorKind, RunEvent};
use neonhub_test_support as support;
use serde_json::{Value, json};

struct Sleeper;

#[async_trait]
impl Agent for Sleeper {
    fn name(&self) -> &str {
        "sleeper"
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        if input["hang"] == json!(true) {
            std::future::pending::<()>().await;
        }
        Ok(json!("awake"))
    }
}

#[actix::test]
async fn an_attempt_past_its_timeout_fails_with_timeout() {
    let (_dir, store) = support::store();
    let options = AgentOptions {
        timeout: Duration::from_millis(50),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Sleeper, options)
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent("sleeper", json!({"hang": true})))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.result.clone().unwrap_err().kind, ErrorKind::Timeout);
    let events = support::events(&store, outcome.run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "failed#1(timeout)"]);
    let RunEvent::Failed(failed) = &events[1] else {
        panic!("{events:?}")
    };
    assert!(
        failed.duration_micros >= 50_000,
        "{}",
        failed.duration_micros
    );

    let next = orchestrator
        .send(SubmitRun::agent("sleeper", json!({"hang": false})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.result, Ok(json!("awake")));
}
