//! `content` (intent `content.generate`): a marketing title and body from a
//! topic, audience, tone and channel, drafted by the `llm` connector (a
//! journaled step, `draft`) when a live one is configured, filled into
//! fixed templates otherwise.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    /// The language model that drafted it; absent for the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
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
        model: None,
    })
}

/// The most tokens a draft may take.
const DRAFT_MAX_TOKENS: u64 = 400;

/// The `llm` chat input that drafts `template`'s content: the same topic,
/// audience, tone and channel, a title on the first line.
fn draft_request(template: &Content) -> Value {
    let length = match template.channel.as_str() {
        "sms" => "at most 140 characters in all",
        "slack" => "two or three sentences",
        "blog" => "three short paragraphs",
        _ => "one short paragraph, signed by the neonhub team",
    };
    json!({
        "system": "You write marketing copy. Answer with a title on the first line and the \
                   text after it, nothing else.",
        "messages": [{
            "role": "user",
            "content": format!(
                "Write a {} {} message about {} for {}: {length}.",
                template.tone, template.channel, template.topic, template.audience
            ),
        }],
        "max_tokens": DRAFT_MAX_TOKENS,
    })
}

/// `template` with the title and body of a model's `answer` (`chat`'s
/// output): the first non-empty line is the title (markdown marks and a
/// `Title:` prefix taken off), the rest the body; an answer of one line is
/// the body under the template's title. SMS bodies are cut to one message.
fn drafted(mut template: Content, answer: &Value) -> Result<Content, AgentError> {
    let text = answer
        .get("content")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AgentError::new("the llm connector answered no content"))?;
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        template.body = text.to_owned();
    } else {
        let title = first
            .trim()
            .trim_start_matches(['#', '*', ' '])
            .trim_end_matches(['*', ' ']);
        let title = title.strip_prefix("Title:").unwrap_or(title).trim();
        template.title = title.to_owned();
        template.body = rest.to_owned();
    }
    if template.channel == "sms" && template.body.chars().count() > SMS_LIMIT {
        let cut: String = template.body.chars().take(SMS_LIMIT - 3).collect();
        template.body = format!("{cut}...");
    }
    template.model = answer
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(template)
}

/// Generates marketing content: from its templates (the default, and with
/// mock connectors), or drafted by the `llm` connector as the step `draft`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContentAgent {
    with_llm: bool,
}

impl ContentAgent {
    /// An agent that drafts with the `llm` connector when `with_llm`, from
    /// its templates otherwise.
    pub fn new(with_llm: bool) -> Self {
        Self { with_llm }
    }
}

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

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let mut content = generate(&input)?;
        if self.with_llm {
            let answer = ctx
                .step("draft")
                .call("llm", "chat", draft_request(&content))
                .await?;
            content = drafted(content, &answer)?;
        }
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
    fn a_draft_gives_the_title_and_the_body() {
        let template = generate(&json!({"topic": "Neon Boots", "channel": "email"})).unwrap();
        let request = draft_request(&template);
        assert!(
            request["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("friendly email message about Neon Boots for everyone")
        );
        let answer = json!({"model": "gpt-4o-mini", "content": "**Title: Walk on light**\n\nMeet Neon Boots."});
        let c = drafted(template.clone(), &answer).unwrap();
        assert_eq!(c.title, "Walk on light");
        assert_eq!(c.body, "Meet Neon Boots.");
        assert_eq!(c.model.as_deref(), Some("gpt-4o-mini"));
        let one_line = drafted(template.clone(), &json!({"content": "Just this."})).unwrap();
        assert_eq!(
            (one_line.title, one_line.body),
            (template.title.clone(), "Just this.".to_owned())
        );
        assert!(drafted(template, &json!({"content": ""})).is_err());
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
