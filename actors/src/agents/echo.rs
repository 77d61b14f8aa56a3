//! `echo` (intent `echo`): returns its input.

use async_trait::async_trait;
use serde_json::Value;

use crate::agent::{Agent, AgentContext, AgentError};

/// Returns its input unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoAgent;

#[async_trait]
impl Agent for EchoAgent {
    fn name(&self) -> &str {
        "echo"
    }

    fn intents(&self) -> Vec<String> {
        vec!["echo".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        Ok(input)
    }
}
