//! `email` (intent `email.send`): builds the message (given, or generated
//! from a topic) and sends it through the `gmail` connector.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::content::generate;
use super::{optional, required};
use crate::agent::{Agent, AgentContext, AgentError};

/// Sends an email through Gmail. Input: `to`, and either `subject` and
/// `body`, or `topic` (plus `audience`, `tone`) to generate them.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmailAgent;

#[async_trait]
impl Agent for EmailAgent {
    fn name(&self) -> &str {
        "email"
    }

    fn intents(&self) -> Vec<String> {
        vec!["email.send".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let to = required(&input, "to")?;
        let (subject, body) = match (optional(&input, "subject"), optional(&input, "body")) {
            (Some(subject), Some(body)) => (subject.to_owned(), body.to_owned()),
            _ => {
                let mut request = input.clone();
                request["channel"] = json!("email");
                let content = generate(&request)?;
                (content.title, content.body)
            }
        };
        let sent = ctx
            .call(
                "gmail",
                "send",
                json!({ "to": to, "subject": subject, "body": body }),
            )
            .await?;
        Ok(json!({
            "to": to,
            "subject": subject,
            "message_id": sent.get("id").cloned().unwrap_or(Value::Null),
            "thread_id": sent.get("threadId").cloned().unwrap_or(Value::Null),
        }))
    }
}
