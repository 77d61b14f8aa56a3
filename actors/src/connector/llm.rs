//! The language-model connector (`llm`): operation `chat` on OpenAI's Chat
//! Completions API (and every server that speaks it: Azure OpenAI, Ollama,
//! vLLM, llama.cpp) or Anthropic's Messages API, never streamed; a
//! deterministic mock without a key. Every answer reports the model, its
//! tokens and its cost from a price table ([`neonhub_events::Usage`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Map, Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, LlmPrice, LlmProvider, Secret};
use super::redact::Redactor;
use super::vendor::llm_code;
use super::{Connector, ConnectorError, http, mock, unknown_operation};
use crate::error::{Error, Result};

/// Anthropic's API version header, the one its Messages API documents.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` of a call that gives none: Anthropic requires one, and the
/// token budget charges it.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 1024;

/// Built-in prices, US dollars per million tokens (input, output), from
/// the vendors' pricing pages (<https://openai.com/api/pricing>,
/// <https://www.anthropic.com/pricing#api>) as published in June 2025.
/// Prices change: set `prices` in `[connectors.llm]` for what you pay. A
/// model matches the longest entry it starts with (`gpt-4o-mini-2024-07-18`
/// is priced as `gpt-4o-mini`); a model matching none costs 0.
const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("o3-mini", 1.10, 4.40),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

/// The language-model connector (`llm`).
pub struct Llm {
    backend: Backend,
    provider: LlmProvider,
    model: String,
    prices: BTreeMap<String, LlmPrice>,
}

enum Backend {
    Mock,
    Live {
        client: Client,
        base_url: String,
        key: Secret,
        redactor: Redactor,
    },
}

/// A `chat` input, checked.
struct Chat {
    model: String,
    /// (role, content), in order; `system` ones included.
    messages: Vec<(String, String)>,
    system: Option<String>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
}

impl Llm {
    /// The deterministic mock, answering for `provider`'s default model.
    pub fn mock() -> Self {
        Self {
            backend: Backend::Mock,
            provider: LlmProvider::OpenAi,
            model: LlmProvider::OpenAi.default_model().to_owned(),
            prices: default_prices(),
        }
    }

    /// Live against `provider`'s API at `base_url` (e.g.
    /// `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` for Ollama,
    /// `https://api.anthropic.com`), with `key` (an empty one: none sent).
    pub fn live(provider: LlmProvider, base_url: impl Into<String>, key: Secret) -> Self {
        Self {
            backend: Backend::Live {
                client: http::client(),
                base_url: base_url.into().trim_end_matches('/').to_owned(),
                redactor: Redactor::new([key.expose()]),
                key,
            },
            provider,
            model: provider.default_model().to_owned(),
            prices: default_prices(),
        }
    }

    /// The model of calls that name none.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Prices by model, over (and beside) the built-in ones.
    pub fn prices(mut self, prices: &BTreeMap<String, LlmPrice>) -> Self {
        self.prices
            .extend(prices.iter().map(|(model, price)| (model.clone(), *price)));
        self
    }

    /// Mock or live as `config` says: live with an API key. Live mode
    /// forced (`NEONHUB_CONNECTORS=live`) without a key calls the configured
    /// base URL without one (a local server: Ollama, vLLM, llama.cpp).
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced with neither a key nor a
    /// base URL.
    pub fn from_config(config: &ConnectorsConfig) -> Result<Self> {
        let llm = &config.llm;
        let base_url = || {
            llm.base_url
                .clone()
                .unwrap_or_else(|| llm.provider.default_base_url().to_owned())
        };
        let connector = match (config.mode_for(llm.api_key.is_some()), &llm.api_key) {
            (ConnectorMode::Mock, _) => Self::mock(),
            (ConnectorMode::Live, Some(key)) => Self::live(llm.provider, base_url(), key.clone()),
            (ConnectorMode::Live, None) if llm.base_url.is_some() => {
                Self::live(llm.provider, base_url(), Secret::new(""))
            }
            (ConnectorMode::Live, None) => {
                return Err(Error::Config(
                    "a live LLM needs NEONHUB_LLM_API_KEY (or the file's [connectors.llm] api_key), \
                     or NEONHUB_LLM_BASE_URL for a local server that takes no key"
                        .to_owned(),
                ));
            }
        };
        let model = llm
            .model
            .clone()
            .unwrap_or_else(|| llm.provider.default_model().to_owned());
        Ok(connector.model(model).prices(&llm.prices))
    }

    /// Whether this connector calls the real service.
    pub fn is_live(&self) -> bool {
        matches!(self.backend, Backend::Live { .. })
    }

    /// What `input_tokens` and `output_tokens` of `model` cost, in US
    /// dollars: its price is the configured or built-in entry it equals,
    /// else the longest it starts with; 0 without one.
    pub fn cost_usd(&self, model: &str, input_tokens: u64, output_tokens: u64) -> f64 {
        let price = self.prices.get(model).or_else(|| {
            self.prices
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, price)| price)
        });
        price.map_or(0.0, |p| {
            (input_tokens as f64 * p.input + output_tokens as f64 * p.output) / 1e6
        })
    }

    fn chat(&self, input: &Value) -> std::result::Result<Chat, ConnectorError> {
        let bad = |why: &str| ConnectorError::permanent(format!("llm chat: {why}"));
        let model = match input.get("model") {
            None | Some(Value::Null) => self.model.clone(),
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(_) => return Err(bad("`model` must be a non-empty string")),
        };
        let list = input
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("the input needs `messages`: a list of {role, content}"))?;
        let mut messages = Vec::with_capacity(list.len());
        for message in list {
            let role = message.get("role").and_then(Value::as_str);
            let content = message.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(role @ ("system" | "user" | "assistant")), Some(content)) => {
                    messages.push((role.to_owned(), content.to_owned()));
                }
                _ => {
                    return Err(bad(
                        "each message needs a `role` (system, user or assistant) and a string \
                         `content`",
                    ));
                }
            }
        }
        let system = match input.get("system") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("`system` must be a string")),
        };
        let max_tokens = match input.get("max_tokens") {
            None | Some(Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("`max_tokens` must be a whole number above 0"))?,
            ),
        };
        let temperature = match input.get("temperature") {
            None | Some(Value::Null) => None,
            Some(t) => Some(
                t.as_f64()
                    .filter(|t| (0.0..=2.0).contains(t))
                    .ok_or_else(|| bad("`temperature` must be a number from 0 to 2"))?,
            ),
        };
        Ok(Chat {
            model,
            messages,
            system,
            max_tokens,
            temperature,
        })
    }

    /// The call's answer, shaped as `chat`'s output.
    fn answer(
        &self,
        model: &str,
        content: &str,
        (input_tokens, output_tokens): (u64, u64),
        finish_reason: &str,
    ) -> Value {
        json!({
            "model": model,
            "content": content,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": self.cost_usd(model, input_tokens, output_tokens),
            "finish_reason": finish_reason,
        })
    }

    fn mock_chat(&self, chat: &Chat) -> Value {
        let key = json!({
            "model": chat.model,
            "system": chat.system,
            "messages": chat.messages,
        });
        let digest = mock::digest("chat", &key);
        let bytes = digest.as_bytes();
        let last = chat
            .messages
            .iter()
            .rev()
            .find(|(role, _)| role == "user")
            .map_or("", |(_, content)| content.as_str());
        let about: String = last
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = bytes
            .iter()
            .take(8 + usize::from(bytes[31] % 16))
            .map(|b| MOCK_WORDS[usize::from(*b) % MOCK_WORDS.len()])
            .collect();
        let mut content = format!("On \"{about}\": {}.", words.join(" "));
        let mut finish = "stop";
        let mut output_tokens = tokens_of(&content);
        if let Some(max) = chat.max_tokens.filter(|max| output_tokens > *max) {
            let cut = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
            content = content.chars().take(cut).collect();
            output_tokens = max;
            finish = "length";
        }
        let input_tokens = prompt_tokens(chat);
        self.answer(&chat.model, &content, (input_tokens, output_tokens), finish)
    }

    async fn live_chat(
        &self,
        chat: &Chat,
        client: &Client,
        base_url: &str,
        key: &Secret,
        redactor: &Redactor,
    ) -> std::result::Result<Value, ConnectorError> {
        let what = format!("llm chat ({})", self.provider.as_str());
        match self.provider {
            LlmProvider::OpenAi => {
                let mut request = client
                    .post(format!("{base_url}/chat/completions"))
                    .json(&openai_body(chat));
                if !key.expose().is_empty() {
                    request = request.bearer_auth(key.expose());
                }
                let answer = http::send_json(request, &what, redactor, llm_code).await?;
                self.parse_openai(&what, chat, &answer)
            }
            LlmProvider::Anthropic => {
                let mut request = client
                    .post(format!("{base_url}/v1/messages"))
                    .header("anthropic-version", ANTHROPIC_VERSION)
                    .json(&anthropic_body(chat));
                if !key.expose().is_empty() {
                    request = request.header("x-api-key", key.expose());
                }
                let answer = http::send_json(request, &what, redactor, llm_code).await?;
                self.parse_anthropic(&what, chat, &answer)
            }
        }
    }

    /// An OpenAI `chat.completion` object as `chat`'s output.
    fn parse_openai(
        &self,
        what: &str,
        chat: &Chat,
        answer: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        let choice = answer
            .pointer("/choices/0")
            .ok_or_else(|| broken(what, "no choices"))?;
        let content = choice
            .pointer("/message/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        let finish = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let usage = answer.get("usage").unwrap_or(&Value::Null);
        let tokens = (
            count(usage, "prompt_tokens"),
            count(usage, "completion_tokens"),
        );
        let model = answer
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(&chat.model);
        Ok(self.answer(model, content, tokens, finish))
    }

    /// An Anthropic `message` object as `chat`'s output.
    fn parse_anthropic(
        &self,
        what: &str,
        chat: &Chat,
        answer: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        let blocks = answer
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| broken(what, "no content"))?;
        let content: String = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let finish = answer
            .get("stop_reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let usage = answer.get("usage").unwrap_or(&Value::Null);
        let tokens = (count(usage, "input_tokens"), count(usage, "output_tokens"));
        let model = answer
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(&chat.model);
        Ok(self.answer(model, &content, tokens, finish))
    }
}

fn default_prices() -> BTreeMap<String, LlmPrice> {
    DEFAULT_PRICES
        .iter()
        .map(|(model, input, output)| {
            (
                (*model).to_owned(),
                LlmPrice {
                    input: *input,
                    output: *output,
                },
            )
        })
        .collect()
}

/// A 200 answer without the shape the API documents: retrying the same
/// request cannot help.
fn broken(what: &str, why: &str) -> ConnectorError {
    ConnectorError::permanent(format!("{what}: the answer has {why}"))
}

fn count(usage: &Value, name: &str) -> u64 {
    usage.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// About four characters a token, as the vendors' rule of thumb has it.
fn tokens_of(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The prompt's tokens, estimated: its text's, and 4 a message for the
/// roles and separators.
fn prompt_tokens(chat: &Chat) -> u64 {
    let system = chat.system.as_deref().map_or(0, tokens_of);
    chat.messages
        .iter()
        .map(|(_, content)| tokens_of(content) + 4)
        .sum::<u64>()
        + system
}

/// Chat Completions' body: the system prompt as the first message.
fn openai_body(chat: &Chat) -> Value {
    let mut messages = Vec::with_capacity(chat.messages.len() + 1);
    if let Some(system) = &chat.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (role, content) in &chat.messages {
        messages.push(json!({"role": role, "content": content}));
    }
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(chat.model));
    body.insert("messages".to_owned(), Value::Array(messages));
    body.insert("stream".to_owned(), json!(false));
    if let Some(max) = chat.max_tokens {
        body.insert("max_tokens".to_owned(), json!(max));
    }
    if let Some(t) = chat.temperature {
        body.insert("temperature".to_owned(), json!(t));
    }
    Value::Object(body)
}

/// Messages' body: `max_tokens` required, the system prompt (and any
/// `system` message) top-level.
fn anthropic_body(chat: &Chat) -> Value {
    let mut system: Vec<&str> = chat.system.as_deref().into_iter().collect();
    let mut messages = Vec::with_capacity(chat.messages.len());
    for (role, content) in &chat.messages {
        if role == "system" {
            system.push(content);
        } else {
            messages.push(json!({"role": role, "content": content}));
        }
    }
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(chat.model));
    body.insert(
        "max_tokens".to_owned(),
        json!(chat.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    body.insert("messages".to_owned(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".to_owned(), json!(system.join("\n\n")));
    }
    body.insert("stream".to_owned(), json!(false));
    if let Some(t) = chat.temperature {
        body.insert("temperature".to_owned(), json!(t));
    }
    Value::Object(body)
}

/// The words the mock's answers are made of.
const MOCK_WORDS: &[&str] = &[
    "bright",
    "launch",
    "today",
    "customers",
    "simple",
    "fast",
    "team",
    "idea",
    "value",
    "growth",
    "clear",
    "story",
    "offer",
    "new",
    "season",
    "friendly",
    "ready",
    "together",
    "better",
    "smart",
    "plan",
    "moment",
    "design",
    "trusted",
    "fresh",
    "daily",
    "results",
    "easy",
    "bold",
    "real",
    "choice",
    "future",
];

#[async_trait]
impl Connector for Llm {
    fn name(&self) -> &str {
        "llm"
    }

    /// A chat changes nothing at the vendor: sent again, it only costs
    /// tokens.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        operation == "chat"
    }

    /// Limited per model (vendors count requests and tokens per model).
    fn limit_key(&self, operation: &str, input: &Value) -> Option<String> {
        (operation == "chat").then(|| {
            input
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_owned()
        })
    }

    /// `max_tokens` (default [`DEFAULT_MAX_TOKENS`]) plus the prompt's
    /// estimated tokens (a quarter of its characters, 4 a message).
    fn estimated_tokens(&self, operation: &str, input: &Value) -> Option<u64> {
        let chat = self.chat(input).ok().filter(|_| operation == "chat")?;
        Some(chat.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) + prompt_tokens(&chat))
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        if operation != "chat" {
            return Err(unknown_operation("llm", operation));
        }
        let chat = self.chat(input)?;
        match &self.backend {
            Backend::Mock => Ok(self.mock_chat(&chat)),
            Backend::Live {
                client,
                base_url,
                key,
                redactor,
            } => self.live_chat(&chat, client, base_url, key, redactor).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(text: &str) -> Value {
        json!({"messages": [{"role": "user", "content": text}]})
    }

    #[tokio::test]
    async fn the_mock_answers_the_same_prompt_the_same_way() {
        let llm = Llm::mock();
        let a = llm.call("chat", &ask("Write a tagline")).await.unwrap();
        assert_eq!(a, llm.call("chat", &ask("Write a tagline")).await.unwrap());
        let b = llm.call("chat", &ask("Write a haiku")).await.unwrap();
        assert_ne!(a["content"], b["content"]);
        assert_eq!(a["model"], json!("gpt-4o-mini"));
        assert_eq!(a["finish_reason"], json!("stop"));
        let (input, output) = (a["input_tokens"].as_u64(), a["output_tokens"].as_u64());
        assert_eq!(input, Some(4 + 4), "{a}");
        assert!(output.is_some_and(|n| n > 5), "{a}");
        let usage = neonhub_events::Usage::from_output(&a).unwrap();
        assert!(usage.cost_usd > 0.0);
        let other_model = json!({"model": "llama3.1", "messages": [{"role": "user", "content": "Write a tagline"}]});
        let c = llm.call("chat", &other_model).await.unwrap();
        assert_ne!(a["content"], c["content"]);
        assert_eq!(c["cost_usd"], json!(0.0), "a model without a price costs 0");
    }

    #[tokio::test]
    async fn the_mock_keeps_to_max_tokens() {
        let llm = Llm::mock();
        let mut input = ask("Write a long story");
        input["max_tokens"] = json!(3);
        let a = llm.call("chat", &input).await.unwrap();
        assert_eq!(a["output_tokens"], json!(3));
        assert_eq!(a["finish_reason"], json!("length"));
        assert!(a["content"].as_str().unwrap().chars().count() <= 12);
    }

    #[tokio::test]
    async fn bad_inputs_are_refused_before_any_call() {
        let llm = Llm::mock();
        for bad in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            json!({"messages": [{"role": "user"}]}),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        ] {
            let err = llm.call("chat", &bad).await.unwrap_err();
            assert!(!err.is_retryable(), "{bad}: {err}");
        }
        assert!(llm.call("complete", &ask("x")).await.is_err());
    }

    #[test]
    fn live_needs_a_key_or_a_local_base_url() {
        let mut config = ConnectorsConfig::default();
        assert!(
            !Llm::from_config(&config).unwrap().is_live(),
            "mock by default"
        );
        config.mode = Some(ConnectorMode::Live);
        let refused = Llm::from_config(&config).err().unwrap().to_string();
        assert!(refused.contains("NEONHUB_LLM_API_KEY"), "{refused}");
        config.llm.base_url = Some("http://127.0.0.1:11434/v1".to_owned());
        assert!(Llm::from_config(&config).unwrap().is_live());
        config.mode = None;
        config.llm.api_key = Some(Secret::new("sk-1"));
        assert!(Llm::from_config(&config).unwrap().is_live());
        config.mode = Some(ConnectorMode::Mock);
        assert!(!Llm::from_config(&config).unwrap().is_live());
    }

    #[test]
    fn prices_match_the_longest_prefix_and_the_file_wins() {
        let mut mine = BTreeMap::new();
        mine.insert(
            "gpt-4o-mini".to_owned(),
            LlmPrice {
                input: 1.0,
                output: 2.0,
            },
        );
        let llm = Llm::mock();
        let dated = llm.cost_usd("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000);
        assert!((dated - 0.75).abs() < 1e-12, "{dated}");
        let llm = llm.prices(&mine);
        assert!((llm.cost_usd("gpt-4o-mini", 1_000_000, 0) - 1.0).abs() < 1e-12);
        assert_eq!(llm.cost_usd("mistral", 1000, 1000), 0.0);
    }

    #[test]
    fn anthropic_takes_the_system_prompt_top_level() {
        let llm = Llm::mock();
        let chat = llm
            .chat(
                &json!({"model": "claude-3-5-haiku-latest", "system": "Be brief.",
                "messages": [{"role": "system", "content": "Use English."},
                             {"role": "user", "content": "Hi"}]}),
            )
            .unwrap();
        let body = anthropic_body(&chat);
        assert_eq!(body["system"], json!("Be brief.\n\nUse English."));
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(body["stream"], json!(false));
        let body = openai_body(&chat);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(body.get("max_tokens"), None);
    }
}
