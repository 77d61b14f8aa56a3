//! `sms` (intent `sms.send`): sends a text (given, or generated from a
//! topic) through the `twilio` connector; an invalid number fails the run
//! with a connector error.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::content::generate;
use super::{optional, required};
use crate::agent::{Agent, AgentContext, AgentError};

/// Sends an SMS through Twilio. Input: `to` (E.164), and `body` or `topic`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmsAgent;

#[async_trait]
impl Agent for SmsAgent {
    fn name(&self) -> &str {
        "sms"
    }

    fn intents(&self) -> Vec<String> {
        vec!["sms.send".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let to = required(&input, "to")?;
        let body = match optional(&input, "body") {
            Some(body) => body.to_owned(),
            None => {
                let mut request = input.clone();
                request["channel"] = json!("sms");
                generate(&request)?.body
            }
        };
        let sent = ctx
            .call("twilio", "send_sms", {
                let mut send = json!({ "to": to, "body": body });
                // One of the account's numbers to send from, if the input names one.
                if let Some(from) = optional(&input, "from") {
                    send["from"] = json!(from);
                }
                send
            })
            .await?;
        Ok(json!({
            "to": to,
            "sid": sent.get("sid").cloned().unwrap_or(Value::Null),
            "status": sent.get("status").cloned().unwrap_or(Value::Null),
        }))
    }
}
