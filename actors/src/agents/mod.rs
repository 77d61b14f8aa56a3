//! The built-in agents, deterministic so the demo and tests can rely on
//! them: `echo`, `content`, `email`, `sms` and `slack`; and [`HttpAgent`],
//! an agent in any language served over HTTP.

mod content;
mod echo;
mod email;
mod http;
mod slack;
mod sms;

pub use content::{Content, ContentAgent, generate};
pub use echo::EchoAgent;
pub use email::EmailAgent;
pub use http::{HttpAgent, MAX_ANSWER_BYTES, StepsBase};
pub use slack::SlackAgent;
pub use sms::SmsAgent;

use serde_json::Value;

use crate::agent::AgentError;

/// The string field `name` of `input`, or a `rejected` error naming it.
pub(crate) fn required<'a>(input: &'a Value, name: &str) -> Result<&'a str, AgentError> {
    input
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| AgentError::rejected(format!("the input needs a string field {name:?}")))
}

/// The string field `name` of `input`, if there is one.
pub(crate) fn optional<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}
