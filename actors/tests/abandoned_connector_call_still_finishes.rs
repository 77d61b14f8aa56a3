//! Given an agent whose attempt times out while its connector call is still
//! in flight, then the call is cut off and the child run gets its terminal
//! event (`in_doubt`: the request may have reached the service) before the
//! agent run fails with `timeout`: a started connector call is never left
//! open while the process lives, and when the service answers later nothing
//! more is recorded. (Until the step work, the child run recorded that late
//! answer as a success after its parent had failed.)

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
    let events = support::events(&store, child).await;
    assert_eq!(support::shape(&events), ["started#1", "failed#1(in_doubt)"]);
    let RunEvent::Failed(failed) = &events[1] else {
        panic!()
    };
    assert!(
        failed.error.message.contains("gated.wait#1"),
        "{}",
        failed.error.message
    );

    let head = store.head().await.unwrap();
    gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a late answer was recorded"
    );
}
