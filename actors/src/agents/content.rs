//! `content` (intent `content.generate`): a marketing title and body from a
//! topic, audience, tone and channel, filled into fixed templates.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{optional, required};
use crate::agent::{Agent, AgentContext, AgentError};

/// The longest SMS body produced.
const SMS_LIMIT: usize = 160;

/// Generated marketing content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The headline (email subject).
    pub title: String,
    /// The text.
    pub body: String,
    /// `email`, `sms`, `slack` or `blog`.
    pub channel: String,
    /// `friendly`, `professional`, `playful` or `urgent`.
    pub tone: String,
    /// Who it is for.
    pub audience: String,
    /// What it is about.
    pub topic: String,
}

/// Builds content from `input`: `topic` (required), `audience` (default
/// `everyone`), `tone` (default `friendly`), `channel` (default `email`).
///
/// # Errors
/// `rejected` for a missing topic or an unknown tone or channel.
pub fn generate(input: &Value) -> Result<Content, AgentError> {
    let topic = required(input, "topic")?.trim();
    let audience = optional(input, "audience").unwrap_or("everyone").trim();
    let tone = optional(input, "tone").unwrap_or("friendly").trim();
    let channel = optional(input, "channel").unwrap_or("email").trim();
    let (title, pitch) = match tone {
        "friendly" => (
            format!("{topic}, made for {audience}"),
            format!("We built {topic} with {audience} in mind, and we think you'll love it."),
        ),
        "professional" => (
            format!("Introducing {topic} for {audience}"),
            format!("{topic} helps {audience} work faster, with less effort and fewer errors."),
        ),
        "playful" => (
            format!("Psst, {audience}: {topic} is here!"),
            format!("Guess what just landed? {topic}! Go on, {audience}, take it for a spin."),
        ),
        "urgent" => (
            format!("Last chance: {topic} for {audience}"),
            format!("Time is running out for {audience} to get {topic}. Act today."),
        ),
        other => {
            return Err(AgentError::rejected(format!(
                "unknown tone {other:?}: use friendly, professional, playful or urgent"
            )));
        }
    };
    let body = match channel {
        "email" => format!("Hi {audience},\n\n{pitch}\n\nThe neonhub team"),
        "sms" => {
            let text = format!("{title}. {pitch}");
            if text.chars().count() > SMS_LIMIT {
                let cut: String = text.chars().take(SMS_LIMIT - 3).collect();
                format!("{cut}...")
            } else {
                text
            }
        }
        "slack" => format!("*{title}*\n{pitch}"),
        "blog" => format!("# {title}\n\n{pitch}\n\nRead on to see what {topic} can do for you."),
        other => {
            return Err(AgentError::rejected(format!(
                "unknown channel {other:?}: use email, sms, slack or blog"
            )));
        }
    };
    Ok(Content {
        title,
        body,
        channel: channel.to_owned(),
        tone: tone.to_owned(),
        audience: audience.to_owned(),
        topic: topic.to_owned(),
    })
}

/// Generates marketing content from templates; calls no connector.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContentAgent;

#[async_trait]
impl Agent for ContentAgent {
    fn name(&self) -> &str {
        "content"
    }

    fn intents(&self) -> Vec<String> {
        vec!["content.generate".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        let content = generate(&input)?;
        serde_json::to_value(content).map_err(|e| AgentError::new(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_request_gives_the_same_content() {
        let input = json!({"topic": "Neon Boots", "audience": "runners", "tone": "playful", "channel": "slack"});
        let a = generate(&input).unwrap();
        assert_eq!(a, generate(&input).unwrap());
        assert_eq!(a.title, "Psst, runners: Neon Boots is here!");
        assert!(a.body.starts_with("*Psst, runners: Neon Boots is here!*\n"));
    }

    #[test]
    fn sms_content_fits_one_message() {
        let topic = "x".repeat(300);
        let c = generate(&json!({"topic": topic, "channel": "sms"})).unwrap();
        assert!(c.body.chars().count() <= SMS_LIMIT);
    }

    #[test]
    fn bad_requests_are_rejected() {
        for bad in [
            json!({}),
            json!({"topic": "t", "tone": "angry"}),
            json!({"topic": "t", "channel": "fax"}),
        ] {
            let err = generate(&bad).unwrap_err();
            assert_eq!(err.kind(), neonhub_events::ErrorKind::Rejected, "{bad}");
        }
    }
}
