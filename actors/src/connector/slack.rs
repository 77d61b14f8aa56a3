//! The Slack connector: `chat.postMessage`, `conversations.list`,
//! `users.info` and file upload (`files.getUploadURLExternal`, the upload,
//! `files.completeUploadExternal`); bot token in live mode.

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, Secret};
use super::{Connector, ConnectorError, http, mock, required_str, unknown_operation};
use crate::error::{Error, Result};

/// The Slack connector (`slack`).
pub struct Slack {
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

impl Slack {
    /// The deterministic mock.
    pub fn mock() -> Self {
        Self {
            backend: Backend::Mock,
        }
    }

    /// Live, against `base_url` (e.g. `https://slack.com/api`).
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
        let token = &config.slack.token;
        match (config.mode_for(token.is_some()), token) {
            (ConnectorMode::Mock, _) => Ok(Self::mock()),
            (ConnectorMode::Live, Some(token)) => {
                Ok(Self::live(&config.slack.base_url, token.clone()))
            }
            (ConnectorMode::Live, None) => Err(Error::Config(
                "live Slack needs NEONHUB_SLACK_TOKEN".to_owned(),
            )),
        }
    }

    /// Whether this connector calls the real service.
    pub fn is_live(&self) -> bool {
        matches!(self.backend, Backend::Live { .. })
    }
}

/// Slack answers HTTP 200 with `{"ok": false, "error": "..."}` on failure.
fn check_ok(what: &str, answer: Value) -> std::result::Result<Value, ConnectorError> {
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer);
    }
    let code = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let message = format!("{what}: slack error {code}");
    Err(match code {
        // Slack refused to act on it: trying again cannot duplicate it.
        "ratelimited" | "service_unavailable" => ConnectorError::not_sent(message),
        "internal_error" | "request_timeout" | "fatal_error" => ConnectorError::transient(message),
        _ => ConnectorError::permanent(message),
    })
}

#[async_trait]
impl Connector for Slack {
    fn name(&self) -> &str {
        "slack"
    }

    /// Reads are safe to repeat; every other operation sends something.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        matches!(operation, "list_channels" | "user_info")
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        let (client, base_url, token) = match &self.backend {
            Backend::Mock => return mock_call(operation, input),
            Backend::Live {
                client,
                base_url,
                token,
            } => (client, base_url, token),
        };
        let secrets = [token.expose()];
        let what = format!("slack {operation}");
        let api = |method: &str| format!("{base_url}/{method}");
        match operation {
            "post_message" => {
                let body = json!({
                    "channel": required_str(input, "channel")?,
                    "text": required_str(input, "text")?,
                });
                let request = client
                    .post(api("chat.postMessage"))
                    .bearer_auth(token.expose())
                    .json(&body);
                check_ok(&what, http::send_json(request, &what, &secrets).await?)
            }
            "list_channels" => {
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(100);
                let request = client
                    .get(api("conversations.list"))
                    .bearer_auth(token.expose())
                    .query(&[("limit", limit.to_string())]);
                check_ok(&what, http::send_json(request, &what, &secrets).await?)
            }
            "user_info" => {
                let request = client
                    .get(api("users.info"))
                    .bearer_auth(token.expose())
                    .query(&[("user", required_str(input, "user")?)]);
                check_ok(&what, http::send_json(request, &what, &secrets).await?)
            }
            "upload_file" => {
                let channel = required_str(input, "channel")?;
                let filename = required_str(input, "filename")?;
                let content = input.get("content").and_then(Value::as_str).unwrap_or("");
                let title = input
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(filename);
                let request = client
                    .get(api("files.getUploadURLExternal"))
                    .bearer_auth(token.expose())
                    .query(&[
                        ("filename", filename.to_owned()),
                        ("length", content.len().to_string()),
                    ]);
                let ticket = check_ok(&what, http::send_json(request, &what, &secrets).await?)?;
                let upload_url = required_str(&ticket, "upload_url")?;
                let file_id = required_str(&ticket, "file_id")?;
                let upload = client.post(upload_url).body(content.to_owned());
                http::send_json(upload, &what, &secrets).await?;
                let complete = client
                    .post(api("files.completeUploadExternal"))
                    .bearer_auth(token.expose())
                    .json(&json!({
                        "files": [{ "id": file_id, "title": title }],
                        "channel_id": channel,
                    }));
                check_ok(&what, http::send_json(complete, &what, &secrets).await?)
            }
            other => Err(unknown_operation("slack", other)),
        }
    }
}

fn mock_call(operation: &str, input: &Value) -> std::result::Result<Value, ConnectorError> {
    match operation {
        "post_message" => {
            let channel = required_str(input, "channel")?;
            let text = required_str(input, "text")?;
            let ts = format!(
                "{}.{:06}",
                mock::unix_seconds(operation, input),
                mock::number(operation, input, 1_000_000)
            );
            Ok(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "message": { "text": text, "type": "message", "ts": ts },
            }))
        }
        "list_channels" => Ok(json!({
            "ok": true,
            "channels": [
                { "id": "C0000000001", "name": "general" },
                { "id": "C0000000002", "name": "marketing" },
                { "id": "C0000000003", "name": "alerts" },
            ],
        })),
        "user_info" => {
            let user = required_str(input, "user")?;
            Ok(json!({
                "ok": true,
                "user": { "id": user, "name": format!("user-{}", mock::id("", operation, input, 6)) },
            }))
        }
        "upload_file" => {
            required_str(input, "channel")?;
            let filename = required_str(input, "filename")?;
            Ok(json!({
                "ok": true,
                "files": [{ "id": mock::id("F", operation, input, 10).to_uppercase(), "title": filename }],
            }))
        }
        other => Err(unknown_operation("slack", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mock_post_is_deterministic() {
        let slack = Slack::mock();
        let input = json!({"channel": "C1", "text": "hello"});
        let a = slack.call("post_message", &input).await.unwrap();
        assert_eq!(a, slack.call("post_message", &input).await.unwrap());
        assert_eq!(a["ok"], json!(true));
        assert!(
            slack
                .call("post_message", &json!({"channel": "C1"}))
                .await
                .is_err()
        );
    }

    #[test]
    fn slack_errors_are_classified() {
        assert!(
            check_ok("x", json!({"ok": false, "error": "ratelimited"}))
                .unwrap_err()
                .is_retryable()
        );
        assert!(
            !check_ok("x", json!({"ok": false, "error": "channel_not_found"}))
                .unwrap_err()
                .is_retryable()
        );
        assert!(check_ok("x", json!({"ok": true})).is_ok());
    }
}
