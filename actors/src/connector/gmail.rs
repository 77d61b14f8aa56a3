//! The Gmail connector: send (an RFC 2822 message, base64url, to
//! `users/me/messages/send`, with a `Message-ID` derived from its step so a
//! send in doubt is found again by `rfc822msgid:`), get profile, list
//! messages, get message; OAuth bearer token in live mode.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Client;
use serde_json::{Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, GmailConfig, Secret};
use super::{
    Connector, ConnectorError, Reconciled, StepRef, http, is_path_safe, mock, required_str,
    unknown_operation,
};
use crate::error::{Error, Result};

/// The Gmail connector (`gmail`).
pub struct Gmail {
    backend: Backend,
}

enum Backend {
    Mock,
    Live {
        client: Client,
        base_url: String,
        token: Secret,
    },
}

impl Gmail {
    /// The deterministic mock.
    pub fn mock() -> Self {
        Self {
            backend: Backend::Mock,
        }
    }

    /// Live, against `base_url` (e.g. `https://gmail.googleapis.com/gmail/v1`).
    pub fn live(base_url: impl Into<String>, token: Secret) -> Self {
        Self {
            backend: Backend::Live {
                client: http::client(),
                base_url: base_url.into().trim_end_matches('/').to_owned(),
                token,
            },
        }
    }

    /// Mock or live as `config` says.
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced without a token.
    pub fn from_config(config: &ConnectorsConfig) -> Result<Self> {
        let GmailConfig { token, base_url } = &config.gmail;
        match (config.mode_for(token.is_some()), token) {
            (ConnectorMode::Mock, _) => Ok(Self::mock()),
            (ConnectorMode::Live, Some(token)) => Ok(Self::live(base_url, token.clone())),
            (ConnectorMode::Live, None) => Err(Error::Config(
                "live Gmail needs NEONHUB_GMAIL_TOKEN".to_owned(),
            )),
        }
    }

    /// Whether this connector calls the real service.
    pub fn is_live(&self) -> bool {
        matches!(self.backend, Backend::Live { .. })
    }
}

/// The `Message-ID` of the message a `send` step sends: derived from the
/// step's run id, so the same in every attempt and after a crash, and unique
/// to the step.
pub(crate) fn message_id(step: &StepRef) -> String {
    format!("<{}@neonhub>", step.run_id)
}

/// The RFC 2822 message for a `send` input: `to`, `subject`, `body` and an
/// optional `from`; with `message_id` (see [`message_id`]) when the send is
/// a step.
pub(crate) fn rfc2822(
    input: &Value,
    message_id: Option<&str>,
) -> std::result::Result<String, ConnectorError> {
    let to = required_str(input, "to")?;
    if !to.contains('@') || to.contains(['\r', '\n']) {
        return Err(ConnectorError::permanent(format!(
            "{to:?} is not an email address"
        )));
    }
    let subject = input.get("subject").and_then(Value::as_str).unwrap_or("");
    if subject.contains(['\r', '\n']) {
        return Err(ConnectorError::permanent("the subject must be one line"));
    }
    let body = input.get("body").and_then(Value::as_str).unwrap_or("");
    let mut message = String::new();
    if let Some(from) = input.get("from").and_then(Value::as_str) {
        message.push_str(&format!("From: {from}\r\n"));
    }
    message.push_str(&format!("To: {to}\r\nSubject: {subject}\r\n"));
    if let Some(id) = message_id {
        message.push_str(&format!("Message-ID: {id}\r\n"));
    }
    message.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n{body}"
    ));
    Ok(message)
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
            Backend::Live {
                client,
                base_url,
                token,
            } => Some((client, base_url, token)),
        };
        let (client, base_url, token) = match Reconciled::lookable("gmail", live, operation, "send")
        {
            Ok(live) => live,
            Err(refused) => return refused,
        };
        let id = message_id(step);
        let query = format!(
            "rfc822msgid:{}",
            id.trim_start_matches('<').trim_end_matches('>')
        );
        let request = client
            .get(format!("{base_url}/users/me/messages"))
            .query(&[("q", query.as_str()), ("includeSpamTrash", "true")])
            .bearer_auth(token.expose());
        let what = "gmail reconcile send";
        match http::send_json(request, what, &[token.expose()]).await {
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
            Backend::Live {
                client,
                base_url,
                token,
            } => {
                let secrets = [token.expose()];
                let request = match operation {
                    "send" => {
                        let id = step.map(message_id);
                        let raw = URL_SAFE_NO_PAD.encode(rfc2822(input, id.as_deref())?);
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
                let request = request.bearer_auth(token.expose());
                http::send_json(request, &format!("gmail {operation}"), &secrets).await
            }
        }
    }
}

fn mock_call(operation: &str, input: &Value) -> std::result::Result<Value, ConnectorError> {
    match operation {
        "send" => {
            rfc2822(input, None)?;
            Ok(json!({
                "id": mock::id("", operation, input, 16),
                "threadId": mock::id("", "thread", input, 16),
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
    fn rfc2822_has_headers_then_a_blank_line_then_the_body() {
        let m = rfc2822(
            &json!({"to": "a@example.com", "subject": "S", "body": "B"}),
            None,
        )
        .unwrap();
        assert!(m.starts_with("To: a@example.com\r\nSubject: S\r\n"));
        assert!(m.ends_with("\r\n\r\nB"));
        let bad = json!({"to": "a@example.com", "subject": "S\r\nBcc: x@y"});
        assert!(rfc2822(&bad, None).is_err());
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
        let m = rfc2822(&json!({"to": "a@example.com", "body": "B"}), Some(&id)).unwrap();
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
