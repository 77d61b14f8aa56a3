//! The Gmail connector: send (an RFC 5322 message, base64url, to
//! `users/me/messages/send`, with a `Message-ID` derived from its step so a
//! send in doubt is found again by `rfc822msgid:`), get profile, list
//! messages, get message; an OAuth bearer token in live mode, refreshed
//! before it expires and once on a 401 when a refresh token is configured.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::config::{ConnectorMode, ConnectorsConfig, GmailConfig, GmailRefresh, Secret};
use super::http::{self, Failure};
use super::redact::Redactor;
use super::{
    Connector, ConnectorError, Reconciled, StepRef, is_path_safe, mail, mock, required_str,
    unknown_operation,
};
use crate::error::{Error, Result};

/// An access token is refreshed when less than this is left of its life,
/// so no request goes out with a token about to expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An access token's life when the token endpoint does not say (Google's
/// tokens live an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The Gmail connector (`gmail`).
pub struct Gmail {
    backend: Backend,
}

enum Backend {
    Mock,
    Live(Box<Live>),
}

struct Live {
    client: Client,
    base_url: String,
    auth: Auth,
}

/// How requests are authorized.
enum Auth {
    /// One token, used until it fails.
    Fixed { token: Secret, redactor: Redactor },
    /// Tokens from the token endpoint, refreshed as they expire.
    Refreshing(Refresher),
}

/// Gets access tokens with the refresh token, one refresh at a time.
struct Refresher {
    refresh: GmailRefresh,
    token_url: String,
    current: Mutex<Access>,
}

/// The access token in use, if any.
#[derive(Default)]
struct Access {
    token: Option<Secret>,
    /// When it stops working; `None`: unknown (a configured first token),
    /// used until a 401.
    expires_at: Option<Instant>,
    /// Counts refreshes, so that a 401 refreshes a token only once however
    /// many requests it failed.
    generation: u64,
}

impl Refresher {
    /// A token to use now (refreshed first when missing or about to
    /// expire) and its generation.
    async fn access(&self, client: &Client) -> std::result::Result<(Secret, u64), ConnectorError> {
        let mut current = self.current.lock().await;
        let fresh = current
            .expires_at
            .is_none_or(|at| at > Instant::now() + REFRESH_MARGIN);
        match &current.token {
            Some(token) if fresh => Ok((token.clone(), current.generation)),
            _ => self.refresh(client, &mut current).await,
        }
    }

    /// A token to use after the one of `generation` got a 401: a new one,
    /// unless another request has already replaced it.
    async fn after_401(
        &self,
        client: &Client,
        generation: u64,
    ) -> std::result::Result<(Secret, u64), ConnectorError> {
        let mut current = self.current.lock().await;
        match &current.token {
            Some(token) if current.generation != generation => {
                Ok((token.clone(), current.generation))
            }
            _ => self.refresh(client, &mut current).await,
        }
    }

    /// Asks the token endpoint for a new access token (RFC 6749 section 6).
    /// A failure here means the Gmail request was not sent: retryable
    /// (not sent) for a connection failure or a 5xx, permanent for a 4xx
    /// (`invalid_grant`: the refresh token was revoked or expired).
    async fn refresh(
        &self,
        client: &Client,
        current: &mut Access,
    ) -> std::result::Result<(Secret, u64), ConnectorError> {
        let what = "gmail token refresh";
        let redactor = self.redactor(current.token.iter());
        let request = client.post(&self.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("client_id", self.refresh.client_id.as_str()),
            ("client_secret", self.refresh.client_secret.expose()),
            ("refresh_token", self.refresh.refresh_token.expose()),
        ]);
        let answer = http::send_json(request, what, &redactor, http::no_code)
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    ConnectorError::not_sent(e.message())
                } else {
                    e
                }
            })?;
        let Some(token) = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(ConnectorError::not_sent(format!(
                "{what}: the answer has no access_token"
            )));
        };
        let lifetime = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        current.token = Some(Secret::new(token));
        current.expires_at = Some(Instant::now() + lifetime);
        current.generation += 1;
        tracing::info!(
            expires_in_seconds = lifetime.as_secs(),
            "gmail access token refreshed"
        );
        Ok((Secret::new(token), current.generation))
    }

    /// Scrubs the client secret, the refresh token and `tokens`.
    fn redactor<'a>(&'a self, tokens: impl Iterator<Item = &'a Secret>) -> Redactor {
        let fixed = [&self.refresh.client_secret, &self.refresh.refresh_token];
        Redactor::new(fixed.into_iter().chain(tokens).map(Secret::expose))
    }
}

impl Gmail {
    /// The deterministic mock.
    pub fn mock() -> Self {
        Self {
            backend: Backend::Mock,
        }
    }

    /// Live, against `base_url` (e.g. `https://gmail.googleapis.com/gmail/v1`),
    /// with one access token.
    pub fn live(base_url: impl Into<String>, token: Secret) -> Self {
        let redactor = Redactor::new([token.expose()]);
        Self::with_auth(base_url.into(), Auth::Fixed { token, redactor })
    }

    fn with_auth(base_url: String, auth: Auth) -> Self {
        Self {
            backend: Backend::Live(Box::new(Live {
                client: http::client(),
                base_url: base_url.trim_end_matches('/').to_owned(),
                auth,
            })),
        }
    }

    /// Mock or live as `config` says: with [`GmailConfig::refresh`], access
    /// tokens come from [`GmailConfig::token_url`] (the configured token,
    /// if any, is used first).
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced without a token or what
    /// refreshes one.
    pub fn from_config(config: &ConnectorsConfig) -> Result<Self> {
        let gmail: &GmailConfig = &config.gmail;
        match (config.gmail_mode(), &gmail.refresh) {
            (ConnectorMode::Mock, _) => Ok(Self::mock()),
            (ConnectorMode::Live, Some(refresh)) => {
                let auth = Auth::Refreshing(Refresher {
                    refresh: refresh.clone(),
                    token_url: gmail.token_url.clone(),
                    current: Mutex::new(Access {
                        token: gmail.token.clone(),
                        ..Access::default()
                    }),
                });
                Ok(Self::with_auth(gmail.base_url.clone(), auth))
            }
            (ConnectorMode::Live, None) => match &gmail.token {
                Some(token) => Ok(Self::live(&gmail.base_url, token.clone())),
                None => Err(Error::Config(
                    "live Gmail needs NEONHUB_GMAIL_TOKEN, or NEONHUB_GMAIL_CLIENT_ID, \
                     NEONHUB_GMAIL_CLIENT_SECRET and NEONHUB_GMAIL_REFRESH_TOKEN"
                        .to_owned(),
                )),
            },
        }
    }

    /// Whether this connector calls the real service.
    pub fn is_live(&self) -> bool {
        matches!(self.backend, Backend::Live(_))
    }
}

impl Live {
    /// Sends `request` with a bearer token and returns the JSON answer. With
    /// a refresh token, a 401 gets one new token and one more try (Gmail did
    /// not act on the request it refused).
    async fn send(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> std::result::Result<Value, ConnectorError> {
        let refresher = match &self.auth {
            Auth::Fixed { token, redactor } => {
                let request = request.bearer_auth(token.expose());
                return http::send_json(request, what, redactor, http::no_code).await;
            }
            Auth::Refreshing(refresher) => refresher,
        };
        let (token, generation) = refresher.access(&self.client).await?;
        let again = request.try_clone();
        let redactor = refresher.redactor([&token].into_iter());
        let first = request.bearer_auth(token.expose());
        match http::send_json_or_status(first, what, &redactor, http::no_code).await {
            Err(Failure {
                status: Some(StatusCode::UNAUTHORIZED),
                error,
            }) => {
                let Some(again) = again else {
                    return Err(error);
                };
                let (fresh, _) = refresher.after_401(&self.client, generation).await?;
                let redactor = refresher.redactor([&token, &fresh].into_iter());
                let again = again.bearer_auth(fresh.expose());
                http::send_json(again, what, &redactor, http::no_code).await
            }
            other => Ok(other?),
        }
    }
}

/// The `Message-ID` of the message a `send` step sends: derived from the
/// step's run id, so the same in every attempt and after a crash, and unique
/// to the step.
pub(crate) fn message_id(step: &StepRef) -> String {
    format!("<{}@neonhub>", step.run_id)
}

#[async_trait]
impl Connector for Gmail {
    fn name(&self) -> &str {
        "gmail"
    }

    /// Reads are safe to repeat; every other operation sends something.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        matches!(operation, "get_profile" | "list_messages" | "get_message")
    }

    /// Quotas are per user: the token's (`me`).
    fn limit_key(&self, _operation: &str, _input: &Value) -> Option<String> {
        Some("me".to_owned())
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        self.request(None, operation, input).await
    }

    /// A step's `send` carries the `Message-ID` derived from the step.
    async fn call_step(
        &self,
        step: &StepRef,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        self.request(Some(step), operation, input).await
    }

    /// A `send` is looked up by its `Message-ID` (`rfc822msgid:` search,
    /// spam and trash included); found, the answer is shaped as `send`'s
    /// (`id`, `threadId`) with `"reconciled": true`.
    async fn reconcile(&self, step: &StepRef, operation: &str, _input: &Value) -> Reconciled {
        let live = match &self.backend {
            Backend::Mock => None,
            Backend::Live(live) => Some(live),
        };
        let live = match Reconciled::lookable("gmail", live, operation, "send") {
            Ok(live) => live,
            Err(refused) => return refused,
        };
        let id = message_id(step);
        let query = format!(
            "rfc822msgid:{}",
            id.trim_start_matches('<').trim_end_matches('>')
        );
        let request = live
            .client
            .get(format!("{}/users/me/messages", live.base_url))
            .query(&[("q", query.as_str()), ("includeSpamTrash", "true")]);
        let what = "gmail reconcile send";
        match live.send(request, what).await {
            Ok(answer) => found_by_message_id(what, &answer),
            Err(e) => Reconciled::Unchecked(e.message().to_owned()),
        }
    }
}

/// The message a `rfc822msgid:` search found, as `send` answers it.
fn found_by_message_id(what: &str, answer: &Value) -> Reconciled {
    let messages = match answer.get("messages") {
        // Gmail leaves `messages` out when nothing matches.
        None | Some(Value::Null) => return Reconciled::NotFound,
        Some(Value::Array(messages)) => messages,
        Some(_) => {
            return Reconciled::Unchecked(format!("{what}: `messages` is not a list"));
        }
    };
    let Some(first) = messages.first() else {
        return Reconciled::NotFound;
    };
    let Some(id) = first.get("id").and_then(Value::as_str) else {
        return Reconciled::Unchecked(format!("{what}: the message found has no id"));
    };
    Reconciled::Found(json!({
        "id": id,
        "threadId": first.get("threadId").cloned().unwrap_or(Value::Null),
        "reconciled": true,
    }))
}

impl Gmail {
    /// One call, with the step's `Message-ID` on a send if there is a step.
    async fn request(
        &self,
        step: Option<&StepRef>,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        match &self.backend {
            Backend::Mock => mock_call(operation, input),
            Backend::Live(live) => {
                let (client, base_url) = (&live.client, &live.base_url);
                let request = match operation {
                    "send" => {
                        let id = step.map(message_id);
                        let raw = URL_SAFE_NO_PAD.encode(mail::message(input, id.as_deref())?);
                        client
                            .post(format!("{base_url}/users/me/messages/send"))
                            .json(&json!({ "raw": raw }))
                    }
                    "get_profile" => client.get(format!("{base_url}/users/me/profile")),
                    "list_messages" => {
                        let mut query = Vec::new();
                        if let Some(q) = input.get("q").and_then(Value::as_str) {
                            query.push(("q", q.to_owned()));
                        }
                        if let Some(n) = input.get("max_results").and_then(Value::as_u64) {
                            query.push(("maxResults", n.to_string()));
                        }
                        client
                            .get(format!("{base_url}/users/me/messages"))
                            .query(&query)
                    }
                    "get_message" => {
                        let id = required_str(input, "id")?;
                        if !is_path_safe(id) {
                            return Err(ConnectorError::permanent(format!(
                                "{id:?} is not a message id"
                            )));
                        }
                        client.get(format!("{base_url}/users/me/messages/{id}"))
                    }
                    other => return Err(unknown_operation("gmail", other)),
                };
                live.send(request, &format!("gmail {operation}")).await
            }
        }
    }
}

fn mock_call(operation: &str, input: &Value) -> std::result::Result<Value, ConnectorError> {
    match operation {
        "send" => {
            mail::check(input)?;
            let text = mock::json(input);
            Ok(json!({
                "id": mock::id_json("", operation, &text, 16),
                "threadId": mock::id_json("", "thread", &text, 16),
                "labelIds": ["SENT"],
            }))
        }
        "get_profile" => Ok(json!({
            "emailAddress": "me@example.com",
            "messagesTotal": 42,
            "threadsTotal": 17,
            "historyId": "100042",
        })),
        "list_messages" => {
            let n = input
                .get("max_results")
                .and_then(Value::as_u64)
                .unwrap_or(3)
                .min(10);
            let messages: Vec<Value> = (0..n)
                .map(|i| {
                    let seed = json!({ "input": input, "i": i });
                    json!({
                        "id": mock::id("", "message", &seed, 16),
                        "threadId": mock::id("", "thread", &seed, 16),
                    })
                })
                .collect();
            Ok(json!({ "messages": messages, "resultSizeEstimate": n }))
        }
        "get_message" => {
            let id = required_str(input, "id")?;
            Ok(json!({
                "id": id,
                "threadId": mock::id("", "thread", input, 16),
                "snippet": format!("mock message {id}"),
                "internalDate": (mock::unix_seconds(operation, input) * 1000).to_string(),
            }))
        }
        other => Err(unknown_operation("gmail", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mock_send_is_deterministic_and_checks_the_address() {
        let gmail = Gmail::mock();
        let input = json!({"to": "a@example.com", "subject": "Hi", "body": "Hello"});
        let a = gmail.call("send", &input).await.unwrap();
        let b = gmail.call("send", &input).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a["id"].as_str().unwrap().len(), 16);
        let bad = gmail
            .call("send", &json!({"to": "nobody"}))
            .await
            .unwrap_err();
        assert!(!bad.is_retryable());
        assert!(gmail.call("delete_everything", &input).await.is_err());
    }

    #[test]
    fn a_step_s_message_carries_its_derived_message_id() {
        let step = StepRef {
            key: "gmail.send#1".to_owned(),
            run_id: neonhub_events::RunId::new(),
            started_at: neonhub_events::Timestamp::now(),
        };
        let id = message_id(&step);
        assert_eq!(id, format!("<{}@neonhub>", step.run_id));
        let m = mail::message(&json!({"to": "a@example.com", "body": "B"}), Some(&id)).unwrap();
        assert!(m.contains(&format!("\r\nMessage-ID: {id}\r\n")), "{m}");
    }

    #[test]
    fn a_search_answer_settles_the_send_or_says_why_not() {
        let found = found_by_message_id(
            "x",
            &json!({"messages": [{"id": "m1", "threadId": "t1"}], "resultSizeEstimate": 1}),
        );
        assert_eq!(
            found,
            Reconciled::Found(json!({"id": "m1", "threadId": "t1", "reconciled": true}))
        );
        let none = found_by_message_id("x", &json!({"resultSizeEstimate": 0}));
        assert_eq!(none, Reconciled::NotFound);
        let odd = found_by_message_id("x", &json!({"messages": "m1"}));
        assert!(matches!(odd, Reconciled::Unchecked(_)), "{odd:?}");
        let no_id = found_by_message_id("x", &json!({"messages": [{}]}));
        assert!(matches!(no_id, Reconciled::Unchecked(_)), "{no_id:?}");
    }
}
