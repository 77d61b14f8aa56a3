//! `slack` (intent `slack.notify`): posts a message (given, or generated
//! from a topic) to a channel through the `slack` connector.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::content::generate;
use super::{optional, required};
use crate::agent::{Agent, AgentContext, AgentError};

/// Posts to Slack. Input: `channel`, and `text` or `topic`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlackAgent;

#[async_trait]
impl Agent for SlackAgent {
    fn name(&self) -> &str {
        "slack"
    }

    fn intents(&self) -> Vec<String> {
        vec!["slack.notify".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let channel = required(&input, "channel")?;
        let text = match optional(&input, "text") {
            Some(text) => text.to_owned(),
            None => {
                let mut request = input.clone();
                request["channel"] = json!("slack");
                generate(&request)?.body
            }
        };
        let posted = ctx
            .call(
                "slack",
                "post_message",
                json!({ "channel": channel, "text": text }),
            )
            .await?;
        Ok(json!({
            "channel": channel,
            "ts": posted.get("ts").cloned().unwrap_or(Value::Null),
        }))
    }
}
