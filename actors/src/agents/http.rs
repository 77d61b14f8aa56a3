//! Agents served over HTTP, in any language: neonhub POSTs each attempt to
//! the agent's URL and records the answer exactly as a built-in agent's. The
//! agent calls connectors back through its run's `steps_url`, as journaled
//! steps ([`crate::CallStep`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::{Client, Url};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::agent::{Agent, AgentContext, AgentError};

/// The largest answer an HTTP agent may give: a bigger one fails the
/// attempt (not retried), and memory stays bounded.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How much of an answer that is not what it should be is quoted in the
/// error.
const QUOTED: usize = 200;

/// Where agents reach this neonhub for their steps: its base URL
/// (`http://127.0.0.1:8080`), known once the server listens. Cloned into
/// every [`HttpAgent`]; set with [`StepsBase::set`].
#[derive(Clone, Debug)]
pub struct StepsBase {
    tx: watch::Sender<Option<String>>,
}

impl Default for StepsBase {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(None),
        }
    }
}

impl StepsBase {
    /// A base not known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the base URL (without a trailing `/`).
    pub fn set(&self, base: impl Into<String>) {
        let base = base.into().trim_end_matches('/').to_owned();
        self.tx.send_replace(Some(base));
    }

    /// The base URL, once set.
    async fn get(&self) -> String {
        let mut rx = self.tx.subscribe();
        let base = rx.wait_for(Option::is_some).await;
        match base {
            Ok(base) => base.clone().unwrap_or_default(),
            // The sender lives in `self`: it cannot be gone.
            Err(_) => String::new(),
        }
    }
}

/// An agent at `url`: each attempt is `POST url` with
/// `{"run_id", "attempt", "input", "correlation_id", "deadline_ms",
/// "steps_url", "steps_token"}`.
///
/// - 2xx with a JSON body: the run's output.
/// - 4xx with `{"error": {"message": ...}}` (or any 4xx): an agent failure
///   that is not retried.
/// - 5xx, no connection, or no answer within the attempt's timeout: a
///   failure the agent's retry policy may try again.
/// - Anything else (a body that is not JSON, a redirect, an answer over
///   [`MAX_ANSWER_BYTES`]): an agent failure naming the URL and what was
///   wrong, not retried.
///
/// During the attempt the agent calls connectors with
/// `POST {steps_url}` and `Authorization: Bearer {steps_token}`.
#[derive(Clone, Debug)]
pub struct HttpAgent {
    name: String,
    intents: Vec<String>,
    url: Url,
    /// `url` as messages show it: no credentials, no query.
    shown: String,
    timeout: Duration,
    steps: StepsBase,
    client: Client,
}

impl HttpAgent {
    /// Agent `name` at `url` handling `intents`, whose attempts last at most
    /// `timeout` (its `deadline_ms`; the same as its [`crate::AgentOptions`]'s).
    ///
    /// # Errors
    /// A message for people if `url` is not an `http` or `https` URL.
    pub fn new(
        name: impl Into<String>,
        intents: Vec<String>,
        url: &str,
        timeout: Duration,
        steps: StepsBase,
    ) -> Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(format!(
                "{url:?} is not an http:// or https:// URL with a host"
            ));
        }
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut shown = parsed.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.set_fragment(None);
        Ok(Self {
            name: name.into(),
            intents,
            shown: shown.to_string(),
            url: parsed,
            timeout,
            steps,
            client,
        })
    }

    /// The URL as messages show it: no credentials, no query.
    fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Reads at most [`MAX_ANSWER_BYTES`] of the answer.
    async fn body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, AgentError> {
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                AgentError::retryable(format!(
                    "the agent at {} broke off its answer: {e}",
                    self.shown_url()
                ))
            })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AgentError::new(format!(
                    "the agent at {} answered more than {MAX_ANSWER_BYTES} bytes: answer with \
                     the run's output only",
                    self.shown_url()
                )));
            }
            body.extend_from_slice(&chunk);
        }
    }
}

/// The start of `body`, for a message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED)]);
    let more = if body.len() > QUOTED { "..." } else { "" };
    format!("{text:?}{more}")
}

/// `error.message` of an error answer, if it has the documented shape.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("error")?
        .get("message")?
        .as_str()
        .map(str::to_owned)
}

#[async_trait]
impl Agent for HttpAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn intents(&self) -> Vec<String> {
        self.intents.clone()
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let base = self.steps.get().await;
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let request = json!({
            "run_id": ctx.run_id().to_string(),
            "attempt": ctx.attempt(),
            "input": input,
            "correlation_id": ctx.correlation_id().to_string(),
            "deadline_ms": deadline_ms,
            "steps_url": format!("{base}/v1/runs/{}/steps", ctx.run_id()),
            "steps_token": ctx.step_token().to_string(),
        });
        let url = self.shown_url();
        let response = self
            .client
            .post(self.url.clone())
            .json(&request)
            .send()
            .await
            .map_err(|e| {
                // No connection, a reset, no answer: it may be down for now.
                AgentError::retryable(format!("the agent at {url} did not answer: {e}"))
            })?;
        let status = response.status();
        let body = self.body(response).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                AgentError::new(format!(
                    "the agent at {url} answered {status} with a body that is not JSON ({e}): \
                     {}; answer the run's output as JSON",
                    quote(&body)
                ))
            });
        }
        let said = error_message(&body);
        let message = |what: &str| match &said {
            Some(message) => format!("the agent at {url} answered {status}{what}: {message}"),
            None => format!(
                "the agent at {url} answered {status}{what}: {}",
                quote(&body)
            ),
        };
        if status.is_server_error() {
            Err(AgentError::retryable(message("")))
        } else if status.is_client_error() {
            Err(AgentError::new(message("")))
        } else {
            Err(AgentError::new(message(
                " (expected 2xx with the output, 4xx or 5xx with an error)",
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_the_url_without_its_credentials_or_query() {
        let agent = HttpAgent::new(
            "a",
            Vec::new(),
            "http://user:s3cret-pass@agents.internal:9000/run?token=abc123#x",
            Duration::from_secs(1),
            StepsBase::new(),
        )
        .unwrap();
        assert_eq!(agent.shown_url(), "http://agents.internal:9000/run");
    }

    #[test]
    fn only_http_urls_with_a_host() {
        for url in [
            "ftp://h/run",
            "not a url",
            "unix:/tmp/s",
            "data:text/plain,x",
        ] {
            let refused = HttpAgent::new(
                "a",
                Vec::new(),
                url,
                Duration::from_secs(1),
                StepsBase::new(),
            );
            assert!(refused.is_err(), "{url} was taken");
        }
    }

    #[test]
    fn an_error_answer_gives_its_message() {
        assert_eq!(
            error_message(br#"{"error": {"message": "no"}}"#).as_deref(),
            Some("no")
        );
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(quote(&[b'a'; 300]).len(), 2 + QUOTED + 3);
    }
}
