//! Orchestrator set-up the actor tests repeat, and an agent that makes
//! whatever connector call its input describes.

use actix::Addr;
use neonhub_actors::{
    Agent, AgentContext, AgentError, ConnectorsConfig, Orchestrator, OrchestratorBuilder,
};
use neonhub_events::SharedStore;
use serde_json::Value;

/// An agent that makes the connector call its input describes:
/// `{"connector": .., "operation": .., "input": ..}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proxy;

#[async_trait::async_trait]
impl Agent for Proxy {
    fn name(&self) -> &str {
        "proxy"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let connector = input["connector"].as_str().unwrap_or_default();
        let operation = input["operation"].as_str().unwrap_or_default();
        Ok(ctx
            .call(connector, operation, input["input"].clone())
            .await?)
    }
}

/// An orchestrator on `store` with the built-in agents and no connectors.
/// Call inside an actix system.
pub fn builtin_orchestrator(store: &SharedStore) -> Addr<Orchestrator> {
    OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .start()
        .expect("start the orchestrator")
}

/// An orchestrator on `store` with the built-in agents and the mock
/// connectors. Call inside an actix system.
pub fn mock_orchestrator(store: &SharedStore) -> Addr<Orchestrator> {
    OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .builtin_connectors(&ConnectorsConfig::mock())
        .expect("the mock connectors")
        .start()
        .expect("start the orchestrator")
}
