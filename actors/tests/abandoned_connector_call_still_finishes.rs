//! Given an agent whose attempt times out while its connector call is still
//! in flight, when the call's service answers later, then the agent run
//! fails with `timeout` and the child run still gets its terminal event:
//! a started connector call is never left open while the process lives.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{AgentOptions, Connector, ConnectorError, ConnectorOptions};
use neonhub_events::{ErrorKind, RunEvent};
use neonhub_test_support as support;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// A service that answers once the test opens its gate.
struct Gated(Arc<Semaphore>);

#[async_trait]
impl Connector for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    async fn call(&self, _operation: &str, input: &Value) -> Result<Value, ConnectorError> {
        self.0.acquire().await.expect("gate").forget();
        Ok(json!({ "echo": input }))
    }
}

#[actix::test]
async fn the_child_run_finishes_after_its_agent_gave_up() {
    let (_dir, store) = support::store();
    let gate = Arc::new(Semaphore::new(0));
    let options = AgentOptions {
        timeout: Duration::from_millis(50),
        ..AgentOptions::default()
    };
    let orchestrator = support::proxy_orchestrator(
        &store,
        options,
        Gated(Arc::clone(&gate)),
        ConnectorOptions::default(),
    );

    let outcome = orchestrator
        .send(support::Proxy::submit("gated", "wait", json!({"n": 1})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.result.clone().unwrap_err().kind, ErrorKind::Timeout);
    let child = support::child_runs(&store, outcome.run_id).await[0];
    assert_eq!(
        support::shape(&support::events(&store, child).await),
        ["started#1"]
    );

    gate.add_permits(1);
    support::wait_until_within("the child run to finish", Duration::from_secs(5), || {
        let store = store.clone();
        async move { support::events(&store, child).await.len() == 2 }
    })
    .await;
    let events = support::events(&store, child).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
    let RunEvent::Succeeded(done) = &events[1] else {
        panic!()
    };
    assert_eq!(done.output, json!({"echo": {"n": 1}}));
}
