//! The Slack connector: `chat.postMessage` (a step's post carries message
//! metadata naming the step, so a post in doubt is found again in
//! `conversations.history`), `conversations.list`, `users.info` and file
//! upload (`files.getUploadURLExternal`, the upload,
//! `files.completeUploadExternal`); bot token in live mode.

use async_trait::async_trait;
use neonhub_events::Timestamp;
use reqwest::Client;
use serde_json::{Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, Secret};
use super::redact::Redactor;
use super::vendor::{Retry, SlackError, VendorCode, slack_code};
use super::{
    Connector, ConnectorError, Reconciled, StepRef, http, mock, required_str, unknown_operation,
};
use crate::error::{Error, Result};

/// The `event_type` of the metadata a step's post carries.
const STEP_EVENT: &str = "neonhub_step";

/// How long before its step started a post is looked for: the vendor's
/// clock and ours differ.
const CLOCK_SKEW_MICROS: u64 = 120_000_000;

/// The content type of a JSON body, as Slack asks for it: without the
/// charset, Slack answers with a `missing_charset` warning.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Messages asked for per page of history when looking a post up.
const HISTORY_PAGE: usize = 200;

/// Pages of history read at most when looking a post up.
const HISTORY_PAGES: usize = 10;

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
        redactor: Redactor,
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
                redactor: Redactor::new([token.expose()]),
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
        match (config.slack_mode(), token) {
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

/// The message metadata a step's post carries: the step's run id.
pub(crate) fn step_metadata(step: &StepRef) -> Value {
    json!({
        "event_type": STEP_EVENT,
        "event_payload": { "step_run_id": step.run_id.to_string() },
    })
}

/// Whether `message` (from `conversations.history`) carries the metadata of
/// the step whose run id is `step_run_id`.
fn carries_step(message: &Value, step_run_id: &str) -> bool {
    let Some(metadata) = message.get("metadata") else {
        return false;
    };
    metadata.get("event_type").and_then(Value::as_str) == Some(STEP_EVENT)
        && metadata
            .pointer("/event_payload/step_run_id")
            .and_then(Value::as_str)
            == Some(step_run_id)
}

/// `oldest` for `conversations.history`: a Slack timestamp
/// (`seconds.micros`) some time before `started_at`.
fn oldest_ts(started_at: Timestamp) -> String {
    let micros = started_at.as_micros().saturating_sub(CLOCK_SKEW_MICROS);
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// What one page of history says about the step's post: `Some` settles
/// it, `None` asks for the next page.
fn search_page(what: &str, channel: &str, step_run_id: &str, page: &Value) -> Option<Reconciled> {
    let Some(messages) = page.get("messages").and_then(Value::as_array) else {
        return Some(Reconciled::Unchecked(format!(
            "{what}: the answer has no `messages` list"
        )));
    };
    if let Some(message) = messages.iter().find(|m| carries_step(m, step_run_id)) {
        let Some(ts) = message.get("ts").and_then(Value::as_str) else {
            return Some(Reconciled::Unchecked(format!(
                "{what}: the message found has no ts"
            )));
        };
        return Some(Reconciled::Found(json!({
            "ok": true,
            "channel": channel,
            "ts": ts,
            "message": message,
            "reconciled": true,
        })));
    }
    if page.get("has_more").and_then(Value::as_bool) == Some(true) {
        None
    } else {
        Some(Reconciled::NotFound)
    }
}

/// Slack answers HTTP 200 with `{"ok": false, "error": "..."}` on failure:
/// a typed [`super::SlackError`] that says whether retrying can help.
fn check_ok(what: &str, answer: Value) -> std::result::Result<Value, ConnectorError> {
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer);
    }
    // `slack_code` quotes only what looks like a code, never an echo.
    let code = slack_code(&json!({"ok": false, "error": answer.get("error")}))
        .unwrap_or_else(|| VendorCode::Slack(SlackError::parse("unknown_error")));
    let message = format!("{what}: {code}");
    Err(code.error(message, Retry::Never))
}

/// A JSON body with the content type Slack asks for.
fn json_body(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request
        .header(reqwest::header::CONTENT_TYPE, JSON_UTF8)
        .body(body.to_string())
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

    /// Posts are limited per channel.
    fn limit_key(&self, operation: &str, input: &Value) -> Option<String> {
        let channel = input.get("channel").and_then(Value::as_str);
        channel
            .filter(|_| operation == "post_message")
            .map(str::to_owned)
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        self.request(None, operation, input).await
    }

    /// A step's `post_message` carries message metadata naming the step.
    async fn call_step(
        &self,
        step: &StepRef,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        self.request(Some(step), operation, input).await
    }

    /// A `post_message` is looked up in the channel's history since a
    /// little before the step started (`conversations.history` with
    /// `include_all_metadata`, up to [`HISTORY_PAGES`] pages) by its
    /// metadata; found, the answer is shaped as `post_message`'s (`channel`,
    /// `ts`, `message`) with `"reconciled": true`.
    async fn reconcile(&self, step: &StepRef, operation: &str, input: &Value) -> Reconciled {
        let live = match &self.backend {
            Backend::Mock => None,
            Backend::Live {
                client,
                base_url,
                token,
                redactor,
            } => Some((client, base_url, token, redactor)),
        };
        let (client, base_url, token, redactor) =
            match Reconciled::lookable("slack", live, operation, "post_message") {
                Ok(live) => live,
                Err(refused) => return refused,
            };
        let channel = match required_str(input, "channel") {
            Ok(channel) => channel,
            Err(e) => return Reconciled::Unchecked(e.message().to_owned()),
        };
        let what = "slack reconcile post_message";
        let step_run_id = step.run_id.to_string();
        let mut query = vec![
            ("channel", channel.to_owned()),
            ("oldest", oldest_ts(step.started_at)),
            ("inclusive", "true".to_owned()),
            ("include_all_metadata", "true".to_owned()),
            ("limit", HISTORY_PAGE.to_string()),
        ];
        for _ in 0..HISTORY_PAGES {
            let request = client
                .get(format!("{base_url}/conversations.history"))
                .bearer_auth(token.expose())
                .query(&query);
            let page = match http::send_json(request, what, redactor, slack_code).await {
                Ok(answer) => match check_ok(what, answer) {
                    Ok(page) => page,
                    Err(e) => return Reconciled::Unchecked(e.message().to_owned()),
                },
                Err(e) => return Reconciled::Unchecked(e.message().to_owned()),
            };
            if let Some(settled) = search_page(what, channel, &step_run_id, &page) {
                return settled;
            }
            let Some(cursor) = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            else {
                return Reconciled::Unchecked(format!(
                    "{what}: the history has more messages but no cursor to them"
                ));
            };
            query.retain(|(name, _)| *name != "cursor");
            query.push(("cursor", cursor.to_owned()));
        }
        Reconciled::Unchecked(format!(
            "{what}: the post is not among the first {} messages since the step started",
            HISTORY_PAGE * HISTORY_PAGES
        ))
    }
}

impl Slack {
    /// One call, with the step's metadata on a post if there is a step.
    async fn request(
        &self,
        step: Option<&StepRef>,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        let (client, base_url, token, redactor) = match &self.backend {
            Backend::Mock => return mock_call(operation, input),
            Backend::Live {
                client,
                base_url,
                token,
                redactor,
            } => (client, base_url, token, redactor),
        };
        let what = format!("slack {operation}");
        let send = |request| http::send_json(request, &what, redactor, slack_code);
        let api = |method: &str| format!("{base_url}/{method}");
        match operation {
            "post_message" => {
                let mut body = json!({
                    "channel": required_str(input, "channel")?,
                    "text": required_str(input, "text")?,
                });
                if let Some(step) = step {
                    body["metadata"] = step_metadata(step);
                }
                let request = client
                    .post(api("chat.postMessage"))
                    .bearer_auth(token.expose());
                check_ok(&what, send(json_body(request, &body)).await?)
            }
            "list_channels" => {
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(100);
                let request = client
                    .get(api("conversations.list"))
                    .bearer_auth(token.expose())
                    .query(&[("limit", limit.to_string())]);
                check_ok(&what, send(request).await?)
            }
            "user_info" => {
                let request = client
                    .get(api("users.info"))
                    .bearer_auth(token.expose())
                    .query(&[("user", required_str(input, "user")?)]);
                check_ok(&what, send(request).await?)
            }
            "upload_file" => {
                let channel = required_str(input, "channel")?;
                let filename = required_str(input, "filename")?;
                let content = input.get("content").and_then(Value::as_str).unwrap_or("");
                let title = input
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(filename);
                // 1. A URL to upload to, and the file's id (form-encoded, as
                // the method documents).
                let request = client
                    .post(api("files.getUploadURLExternal"))
                    .bearer_auth(token.expose())
                    .form(&[
                        ("filename", filename.to_owned()),
                        ("length", content.len().to_string()),
                    ]);
                let ticket = check_ok(&what, send(request).await?)?;
                let upload_url = ticket_field(&what, &ticket, "upload_url")?;
                let file_id = ticket_field(&what, &ticket, "file_id")?;
                // 2. The bytes, raw, to that URL: Slack answers 200 with
                // text (`OK - <length>`), not JSON.
                let upload = client
                    .post(upload_url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(content.to_owned());
                let uploading = format!("{what} (uploading the bytes)");
                http::send_text(upload, &uploading, redactor, http::no_code).await?;
                // 3. Complete it, shared to the channel.
                let complete = client
                    .post(api("files.completeUploadExternal"))
                    .bearer_auth(token.expose());
                let body = json!({
                    "files": [{ "id": file_id, "title": title }],
                    "channel_id": channel,
                });
                check_ok(&what, send(json_body(complete, &body)).await?)
            }
            other => Err(unknown_operation("slack", other)),
        }
    }
}

/// A string field of `files.getUploadURLExternal`'s answer.
fn ticket_field<'a>(
    what: &str,
    ticket: &'a Value,
    name: &str,
) -> std::result::Result<&'a str, ConnectorError> {
    ticket
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConnectorError::permanent(format!(
                "{what}: files.getUploadURLExternal answered no {name}"
            ))
        })
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

    #[test]
    fn a_page_of_history_finds_the_step_s_post_by_its_metadata() {
        let step = StepRef {
            key: "slack.post_message#1".to_owned(),
            run_id: neonhub_events::RunId::new(),
            started_at: Timestamp(1_700_000_000_000_000),
        };
        let id = step.run_id.to_string();
        let ours =
            json!({"ts": "1700000001.000200", "text": "hi", "metadata": step_metadata(&step)});
        let other = json!({"ts": "1700000002.000100", "text": "hi", "metadata":
            {"event_type": STEP_EVENT, "event_payload": {"step_run_id": "another"}}});
        let page = json!({"ok": true, "messages": [other.clone(), ours], "has_more": false});
        let Some(Reconciled::Found(found)) = search_page("x", "C1", &id, &page) else {
            panic!("not found in {page}")
        };
        assert_eq!(found["ts"], json!("1700000001.000200"));
        assert_eq!(found["channel"], json!("C1"));
        assert_eq!(found["reconciled"], json!(true));

        let more = json!({"ok": true, "messages": [other.clone()], "has_more": true});
        assert_eq!(search_page("x", "C1", &id, &more), None);
        let done = json!({"ok": true, "messages": [other], "has_more": false});
        assert_eq!(
            search_page("x", "C1", &id, &done),
            Some(Reconciled::NotFound)
        );
        let odd = search_page("x", "C1", &id, &json!({"ok": true}));
        assert!(matches!(odd, Some(Reconciled::Unchecked(_))), "{odd:?}");
        assert_eq!(oldest_ts(step.started_at), "1699999880.000000");
    }
}
