//! The HTTP plumbing of live connectors: one request, its answer as JSON,
//! failures classified (no connection, 429 and 503: not sent; another 5xx or
//! a broken answer: may have had its effect; other 4xx: permanent)
//! and every credential scrubbed from the messages.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::Value;

use super::ConnectorError;

/// The longest answer body quoted in an error message.
const MAX_QUOTED_BODY: usize = 300;

/// A client for live connectors (rustls, a connect timeout; the request
/// timeout is the connector actor's).
pub(crate) fn client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// Replaces every credential in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "***");
    }
    text
}

/// Sends `request` and returns its JSON answer (`null` if empty).
pub(crate) async fn send_json(
    request: RequestBuilder,
    what: &str,
    secrets: &[&str],
) -> Result<Value, ConnectorError> {
    let response = request.send().await.map_err(|e| {
        let connect = e.is_connect();
        let e = e.without_url();
        let message = redact(&format!("{what}: request failed: {e}"), secrets);
        if connect {
            // No connection, so no request reached the vendor.
            ConnectorError::not_sent(message)
        } else {
            ConnectorError::transient(message)
        }
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| super::parse_retry_after(v, std::time::SystemTime::now()));
    let body = response.text().await.map_err(|e| {
        let e = e.without_url();
        ConnectorError::transient(redact(
            &format!("{what}: reading the answer failed: {e}"),
            secrets,
        ))
    })?;
    if !status.is_success() {
        let quoted: String = body.chars().take(MAX_QUOTED_BODY).collect();
        let message = redact(&format!("{what}: HTTP {status}: {quoted}"), secrets);
        return Err(if status == StatusCode::TOO_MANY_REQUESTS {
            // The vendor paces us: it did not act on it, and is up.
            ConnectorError::throttled(message, retry_after)
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            // The vendor asks us to come back: it did not act on it.
            ConnectorError::not_sent(message).with_retry_after(retry_after)
        } else if status.is_server_error() {
            ConnectorError::transient(message)
        } else {
            ConnectorError::permanent(message)
        });
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| {
        ConnectorError::permanent(redact(
            &format!("{what}: the answer is not JSON: {e}"),
            secrets,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_scrubs_every_occurrence() {
        let out = redact("Bearer abcd1234 and abcd1234 again", &["abcd1234", ""]);
        assert_eq!(out, "Bearer *** and *** again");
    }
}
