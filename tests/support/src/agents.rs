//! Orchestrator set-up the actor tests repeat, and the agents they share:
//! one that makes whatever connector call its input describes, one that
//! waits at a gate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix::Addr;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, Connector, ConnectorOptions, ConnectorsConfig,
    Orchestrator, OrchestratorBuilder, Secret, SubmitRun, Twilio,
};
use neonhub_events::SharedStore;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

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

impl Proxy {
    /// A run of the proxy that calls `operation` of `connector` with `input`.
    pub fn submit(connector: &str, operation: &str, input: Value) -> SubmitRun {
        SubmitRun::agent(
            "proxy",
            json!({"connector": connector, "operation": operation, "input": input}),
        )
    }
}

/// An agent named `gated` that counts the runs entering it, then waits for
/// a permit of its gate before answering with its input.
#[derive(Clone, Debug)]
pub struct Gated {
    /// The gate: add a permit to let one run through.
    pub gate: Arc<Semaphore>,
    /// How many runs have entered the agent.
    pub entered: Arc<AtomicU32>,
}

impl Default for Gated {
    fn default() -> Self {
        Self::new()
    }
}

impl Gated {
    /// A closed gate, no run entered yet.
    pub fn new() -> Self {
        Self {
            gate: Arc::new(Semaphore::new(0)),
            entered: Arc::new(AtomicU32::new(0)),
        }
    }
}

#[async_trait::async_trait]
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

/// An orchestrator on `store` with the [`Proxy`] agent and one connector
/// for it to call. Call inside an actix system.
pub fn proxy_orchestrator(
    store: &SharedStore,
    agent: AgentOptions,
    connector: impl Connector,
    options: ConnectorOptions,
) -> Addr<Orchestrator> {
    OrchestratorBuilder::new(store.clone())
        .agent(|| Proxy, agent)
        .connector(connector, options)
        .start()
        .expect("start the orchestrator")
}

/// Live Twilio against a local server standing in for it (`base_url` for
/// both the messaging and the lookup API), with test credentials.
pub fn twilio_at(base_url: &str) -> Twilio {
    Twilio::live(
        base_url,
        base_url,
        "AC0123",
        Secret::new("twilio-token-0123"),
        "+15550000000",
    )
}
