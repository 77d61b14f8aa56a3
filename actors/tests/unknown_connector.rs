//! Given no connector named `fax`, when an agent calls it, then the call
//! fails with a typed connector error without recording a child run, and
//! the agent run fails with kind connector.

use neonhub_actors::{AgentOptions, OrchestratorBuilder};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn calling_a_missing_connector_fails_the_agent_run_without_a_child_run() {
    let store = support::memory_store();
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| support::Proxy, AgentOptions::default())
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(support::Proxy::submit("fax", "send", json!({})))
        .await
        .unwrap()
        .unwrap();

    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connector);
    assert_eq!(error.message, "no connector is named \"fax\"");
    assert!(support::child_runs(&store, outcome.run_id).await.is_empty());
    assert_eq!(
        support::shape(&support::events(&store, outcome.run_id).await),
        ["started#1", "failed#1(connector)"]
    );
    assert_eq!(support::all(&store).await.len(), 2);
}
