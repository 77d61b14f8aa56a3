//! Given an agent that fails twice with a retryable error and a policy of
//! three attempts, when a run is submitted, then its stream is exactly
//! started#1, failed#1(will retry), started#2, failed#2(will retry),
//! started#3, succeeded#3, each append at the next revision.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, OrchestratorBuilder, RetryPolicy, SubmitRun,
};
use neonhub_events::RunEvent;
use neonhub_test_support as support;
use serde_json::{Value, json};

struct Flaky {
    failures_left: Arc<AtomicU32>,
}

#[async_trait]
impl Agent for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(AgentError::retryable(format!(
                "attempt {} hiccuped",
                ctx.attempt()
            )));
        }
        Ok(json!({ "input": input, "attempt": ctx.attempt() }))
    }
}

#[actix::test]
async fn retryable_failures_are_retried_in_the_same_stream() {
    let (_dir, store) = support::store();
    let failures_left = Arc::new(AtomicU32::new(2));
    let shared = Arc::clone(&failures_left);
    let options = AgentOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(5)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            move || Flaky {
                failures_left: Arc::clone(&shared),
            },
            options,
        )
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent("flaky", json!("x")))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.result, Ok(json!({"input": "x", "attempt": 3})));
    assert_eq!(outcome.attempts, 3);
    let events = support::events(&store, outcome.run_id).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(agent, will retry)",
            "started#2",
            "failed#2(agent, will retry)",
            "started#3",
            "succeeded#3",
        ]
    );
    let RunEvent::Failed(first) = &events[1] else {
        panic!()
    };
    assert_eq!(first.error.message, "attempt 1 hiccuped");
    // Each retry starts only after the backoff: the next RunStarted is later
    // than the failure it follows.
    let (RunEvent::Started(s1), RunEvent::Started(s2)) = (&events[0], &events[2]) else {
        panic!()
    };
    assert_eq!(s1.input, s2.input);
    assert_eq!(s1.correlation_id, s2.correlation_id);
    assert!(s2.started_at.as_micros() >= first.finished_at.as_micros());
    support::assert_contiguous(&support::recorded(&store, outcome.run_id).await);
}
