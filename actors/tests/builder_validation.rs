//! Given an inconsistent configuration (two agents with one name, one intent
//! for two agents, two connectors with one name, a zero bound, live mode
//! forced without credentials), when the orchestrator is built, then it
//! refuses with a `Config` error naming the problem.

use neonhub_actors::{
    ConnectorMode, ConnectorOptions, ConnectorsConfig, EchoAgent, Error, Gmail, OrchestratorBuilder,
};
use neonhub_test_support as support;

fn config_error(result: neonhub_actors::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[actix::test]
async fn inconsistent_configurations_are_refused() {
    let store = support::memory_store();
    let builder = || OrchestratorBuilder::new(store.clone());

    let twice = builder()
        .builtin_agents()
        .agent(|| EchoAgent, Default::default())
        .start();
    assert!(config_error(twice).contains("two agents are named \"echo\""));

    let zero = builder().builtin_agents().max_in_flight(0).start();
    assert!(config_error(zero).contains("max_in_flight"));

    let connectors = builder()
        .connector(Gmail::mock(), ConnectorOptions::default())
        .connector(Gmail::mock(), ConnectorOptions::default())
        .start();
    assert!(config_error(connectors).contains("two connectors are named \"gmail\""));

    let forced = ConnectorsConfig {
        mode: Some(ConnectorMode::Live),
        ..ConnectorsConfig::default()
    };
    let live = builder().builtin_connectors(&forced).map(|_| ());
    assert!(config_error(live).contains("NEONHUB_GMAIL_TOKEN"));
}

/// Claims the `echo` intent another agent already has.
struct Copycat;

#[async_trait::async_trait]
impl neonhub_actors::Agent for Copycat {
    fn name(&self) -> &str {
        "copycat"
    }

    fn intents(&self) -> Vec<String> {
        vec!["echo".to_owned()]
    }

    async fn run(
        &self,
        input: serde_json::Value,
        _ctx: neonhub_actors::AgentContext,
    ) -> Result<serde_json::Value, neonhub_actors::AgentError> {
        Ok(input)
    }
}

#[actix::test]
async fn one_intent_cannot_route_to_two_agents() {
    let store = support::memory_store();
    let result = OrchestratorBuilder::new(store)
        .builtin_agents()
        .agent(|| Copycat, Default::default())
        .start();
    assert!(config_error(result).contains("\"echo\" is claimed by both \"echo\" and \"copycat\""));
}
