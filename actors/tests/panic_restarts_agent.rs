//! Given an agent with state, when it panics, then the run fails with
//! RunFailed{panicked}, its actor is restarted with a fresh agent, and the
//! orchestrator and the other agents carry on.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, ListAgents, OrchestratorBuilder, SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::{Value, json};

/// Counts its calls; panics when asked to. `inline`: it says it only
/// awaits, so its attempts run in the run's own task, not on its actor.
#[derive(Default)]
struct Counter {
    calls: AtomicU32,
    inline: bool,
}

#[async_trait]
impl Agent for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn awaits_only(&self) -> bool {
        self.inline
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if input["panic"] == json!(true) {
            panic!("asked to panic on call {calls}");
        }
        Ok(json!({ "calls": calls }))
    }
}

#[actix::test]
async fn a_panic_fails_the_run_and_restarts_the_agent_with_fresh_state() {
    panic_and_restart(false).await;
}

#[actix::test]
async fn an_agent_that_only_awaits_is_restarted_alike() {
    panic_and_restart(true).await;
}

async fn panic_and_restart(inline: bool) {
    let (_dir, store) = support::store();
    let counter = move || Counter {
        inline,
        ..Counter::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(counter, AgentOptions::default())
        .builtin_agents()
        .start()
        .unwrap();
    let submit = |input: Value| orchestrator.send(SubmitRun::agent("counter", input));

    let first = submit(json!({})).await.unwrap().unwrap();
    assert_eq!(first.result, Ok(json!({"calls": 1})));
    let second = submit(json!({})).await.unwrap().unwrap();
    assert_eq!(second.result, Ok(json!({"calls": 2})));

    let crashed = submit(json!({"panic": true})).await.unwrap().unwrap();
    let error = crashed.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Panicked);
    assert!(
        error.message.contains("asked to panic on call 3"),
        "{}",
        error.message
    );
    let events = support::events(&store, crashed.run_id).await;
    assert_eq!(support::shape(&events), ["started#1", "failed#1(panicked)"]);

    // Fresh state: the count starts again.
    let after = submit(json!({})).await.unwrap().unwrap();
    assert_eq!(after.result, Ok(json!({"calls": 1})));
    let agents = orchestrator.send(ListAgents).await.unwrap();
    let counter = agents.iter().find(|a| a.name == "counter").unwrap();
    assert_eq!(counter.restarts, 1);
    let echo = agents.iter().find(|a| a.name == "echo").unwrap();
    assert_eq!(echo.restarts, 0);

    // Other agents were never disturbed.
    let echoed = orchestrator
        .send(SubmitRun::intent("echo", json!(7)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed.result, Ok(json!(7)));
}

/// Waits for a permit, or panics, as its input says.
struct Moody {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Agent for Moody {
    fn name(&self) -> &str {
        "moody"
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        if input["panic"] == json!(true) {
            panic!("moody panicked");
        }
        self.gate.acquire().await.expect("gate").forget();
        Ok(input)
    }
}

#[actix::test]
async fn a_panic_does_not_disturb_other_runs_of_the_same_agent() {
    let (_dir, store) = support::store();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let shared = std::sync::Arc::clone(&gate);
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            move || Moody {
                gate: std::sync::Arc::clone(&shared),
            },
            AgentOptions::default(),
        )
        .start()
        .unwrap();

    let waiting = tokio::spawn(orchestrator.send(SubmitRun::agent("moody", json!({"n": 1}))));
    support::wait_until_within(
        "the first run to start",
        std::time::Duration::from_secs(5),
        || {
            let store = store.clone();
            async move { support::all(&store).await.len() == 1 }
        },
    )
    .await;
    let crashed = orchestrator
        .send(SubmitRun::agent("moody", json!({"panic": true})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crashed.result.unwrap_err().kind, ErrorKind::Panicked);
    assert_eq!(orchestrator.send(ListAgents).await.unwrap()[0].restarts, 1);

    gate.add_permits(1);
    let survivor = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(survivor.result, Ok(json!({"n": 1})));
    assert_eq!(
        support::shape(&support::events(&store, survivor.run_id).await),
        ["started#1", "succeeded#1"]
    );
}
