//! Given a connector whose service never answers, an operation that is safe
//! to repeat, and a short request timeout with two attempts, when an agent
//! calls it, then each attempt of
//! the child run fails with `timeout`, the second terminally, and the agent
//! run fails with `timeout`.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{AgentOptions, Connector, ConnectorError, ConnectorOptions, RetryPolicy};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::{Value, json};

/// A service that never answers (the failure this test must force).
struct Silent;

#[async_trait]
impl Connector for Silent {
    fn name(&self) -> &str {
        "silent"
    }

    async fn call(&self, _operation: &str, _input: &Value) -> Result<Value, ConnectorError> {
        std::future::pending().await
    }

    /// A read: resending it after a timeout cannot duplicate anything. (A
    /// timed-out send is never resent: `unsafe_steps_are_never_resent.rs`.)
    fn is_safe_to_repeat(&self, _operation: &str) -> bool {
        true
    }
}

#[actix::test]
async fn a_request_past_its_timeout_fails_with_timeout_and_is_retried() {
    let (_dir, store) = support::store();
    let options = ConnectorOptions {
        timeout: Duration::from_millis(30),
        retry: RetryPolicy::attempts(2, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    };
    let orchestrator =
        support::proxy_orchestrator(&store, AgentOptions::default(), Silent, options);

    let outcome = orchestrator
        .send(support::Proxy::submit("silent", "ping", json!({"n": 1})))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(outcome.result.clone().unwrap_err().kind, ErrorKind::Timeout);
    let child = support::child_runs(&store, outcome.run_id).await[0];
    assert_eq!(
        support::shape(&support::events(&store, child).await),
        [
            "started#1",
            "failed#1(timeout, will retry)",
            "started#2",
            "failed#2(timeout)"
        ]
    );
    assert_eq!(
        support::shape(&support::events(&store, outcome.run_id).await),
        ["started#1", "failed#1(timeout)"]
    );
}
