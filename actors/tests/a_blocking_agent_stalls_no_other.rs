//! No single thread for everything. Given an agent that blocks its thread
//! (a synchronous sleep, as CPU-heavy or careless code does), when another
//! agent's run is submitted meanwhile, then it finishes while the first is
//! still blocked: agents run on a pool of arbiters, apart from the
//! orchestrator, the connectors and the timers.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, EchoAgent, OrchestratorBuilder, StartRun,
    SubmitRun,
};
use neonhub_test_support as support;
use serde_json::{Value, json};

const BLOCKED: Duration = Duration::from_secs(2);

/// Blocks its thread for [`BLOCKED`].
#[derive(Clone, Copy)]
struct Blocker;

#[async_trait]
impl Agent for Blocker {
    fn name(&self) -> &str {
        "blocker"
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        std::thread::sleep(BLOCKED);
        Ok(input)
    }
}

#[actix::test]
async fn a_run_of_another_agent_finishes_while_one_agent_blocks_its_thread() {
    let (_dir, store) = support::store();
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Blocker, AgentOptions::default())
        .agent(|| EchoAgent, AgentOptions::default())
        .agent_threads(2)
        .start()
        .unwrap();
    let blocked = orchestrator
        .send(StartRun(SubmitRun::agent("blocker", json!({}))))
        .await
        .unwrap()
        .unwrap();
    // Let the blocker's attempt take its thread.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let began = Instant::now();
    let echo = orchestrator
        .send(SubmitRun::agent("echo", json!({"hi": 1})))
        .await
        .unwrap()
        .unwrap();
    let took = began.elapsed();

    assert!(echo.is_success(), "{:?}", echo.result);
    assert!(
        took < BLOCKED / 2,
        "the echo run waited {took:?} for the blocked agent's thread"
    );
    assert!(blocked.outcome().await.unwrap().is_success());
}
