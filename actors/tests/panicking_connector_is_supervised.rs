//! Given a connector whose call panics on one input, when an agent calls
//! it, then that one call fails with `panicked` (in the child run and the
//! agent run), the connector's actor restarts (counted by `ListConnectors`),
//! and the next call, and calls already on the wire, still work.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    AgentOptions, Connector, ConnectorError, ConnectorInfo, ConnectorOptions, ListConnectors,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::{Proxy, proxy_orchestrator};
use serde_json::{Value, json};

/// Panics when the input says `boom`; sleeps when it says `slow`.
struct Fragile;

#[async_trait]
impl Connector for Fragile {
    fn name(&self) -> &str {
        "fragile"
    }

    async fn call(&self, _operation: &str, input: &Value) -> Result<Value, ConnectorError> {
        if input["slow"].as_bool() == Some(true) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            input["boom"].as_bool() != Some(true),
            "the fragile connector broke"
        );
        Ok(json!({"ok": true}))
    }
}

#[actix::test]
async fn a_panic_fails_one_call_and_the_connector_keeps_working() {
    let (_dir, store) = support::store();
    let orchestrator = proxy_orchestrator(
        &store,
        AgentOptions::default(),
        Fragile,
        ConnectorOptions::default(),
    );
    let call = |input: Value| orchestrator.send(Proxy::submit("fragile", "op", input));

    // A call on the wire while another one panics is not dropped.
    let slow = actix::spawn(call(json!({"slow": true})));
    let boom = call(json!({"boom": true})).await.unwrap().unwrap();

    let error = boom.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Panicked, "{error:?}");
    assert!(
        error.message.contains("the fragile connector broke"),
        "{}",
        error.message
    );
    let child = support::child_runs(&store, boom.run_id).await[0];
    assert_eq!(
        support::shape(&support::events(&store, child).await),
        ["started#1", "failed#1(panicked)"]
    );

    let next = call(json!({})).await.unwrap().unwrap();
    assert!(next.is_success(), "{next:?}");
    let slow = slow.await.unwrap().unwrap().unwrap();
    assert!(slow.is_success(), "{slow:?}");
    assert_eq!(
        orchestrator.send(ListConnectors).await.unwrap(),
        [ConnectorInfo {
            name: "fragile".to_owned(),
            restarts: 1
        }]
    );
}
