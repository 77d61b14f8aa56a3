//! Given an orchestrator bounded to two runs in flight, when a third run is
//! submitted while two are running, then it is refused at once with
//! `Overloaded` and nothing is recorded for it; once a slot frees up, runs
//! are accepted again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, Error, GetStats, OrchestratorBuilder, SubmitRun,
};
use neonhub_test_support as support;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

struct Gated {
    gate: Arc<Semaphore>,
    entered: Arc<AtomicU32>,
}

#[async_trait]
impl Agent for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.expect("gate").forget();
        Ok(input)
    }
}

#[actix::test]
async fn a_full_orchestrator_refuses_at_once_and_records_nothing() {
    let store = support::memory_store();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicU32::new(0));
    let (g, e) = (Arc::clone(&gate), Arc::clone(&entered));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            move || Gated {
                gate: Arc::clone(&g),
                entered: Arc::clone(&e),
            },
            AgentOptions::default(),
        )
        .max_in_flight(2)
        .start()
        .unwrap();

    let a = tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("a"))));
    let b = tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("b"))));
    support::wait_until_within("two runs inside the agent", Duration::from_secs(5), || {
        let entered = Arc::clone(&entered);
        async move { entered.load(Ordering::SeqCst) == 2 }
    })
    .await;
    let head = store.head().await.unwrap();
    let stats = orchestrator.send(GetStats).await.unwrap();
    assert_eq!((stats.in_flight, stats.max_in_flight), (2, 2));

    let refused = orchestrator
        .send(SubmitRun::agent("gated", json!("c")))
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(Error::Overloaded { limit: 2 })),
        "{refused:?}"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "nothing recorded for the refused run"
    );
    assert_eq!(entered.load(Ordering::SeqCst), 2);

    gate.add_permits(2);
    assert!(a.await.unwrap().unwrap().unwrap().is_success());
    assert!(b.await.unwrap().unwrap().unwrap().is_success());
    assert_eq!(orchestrator.send(GetStats).await.unwrap().in_flight, 0);

    gate.add_permits(1);
    let accepted = orchestrator
        .send(SubmitRun::agent("gated", json!("d")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.result, Ok(json!("d")));
}
