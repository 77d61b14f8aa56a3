//! The HTTP plumbing of live connectors: one request, its answer as JSON
//! (or as text), failures classified (no connection, 429 and 503: not sent;
//! another 5xx or a broken answer: may have had its effect; other 4xx:
//! permanent; a vendor's own error code, typed, where it says otherwise)
//! and every credential scrubbed from the messages before any of an answer
//! is cut.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::Value;

use super::ConnectorError;
use super::redact::Redactor;
use super::vendor::{LlmError, Retry, SlackError, TwilioError, VendorCode};

/// The longest answer body quoted in an error message (after redaction).
const MAX_QUOTED_BODY: usize = 300;

/// Reads a vendor's typed error code out of an error answer's JSON.
pub(crate) type ReadCode = fn(&Value) -> Option<VendorCode>;

/// A vendor without typed error codes.
pub(crate) fn no_code(_: &Value) -> Option<VendorCode> {
    None
}

/// A client for live connectors (rustls, a connect timeout; the request
/// timeout is the connector actor's).
pub(crate) fn client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// A failed request: the error, and the HTTP status if an answer came.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The answer's status, if there was an answer.
    pub(crate) status: Option<StatusCode>,
    /// What the caller reports.
    pub(crate) error: ConnectorError,
}

impl From<Failure> for ConnectorError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

/// Sends `request` and returns its JSON answer (`null` if empty).
pub(crate) async fn send_json(
    request: RequestBuilder,
    what: &str,
    redactor: &Redactor,
    read_code: ReadCode,
) -> Result<Value, ConnectorError> {
    Ok(send_json_or_status(request, what, redactor, read_code).await?)
}

/// [`send_json`], with the status of a failed answer kept (Gmail refreshes
/// its token on a 401).
pub(crate) async fn send_json_or_status(
    request: RequestBuilder,
    what: &str,
    redactor: &Redactor,
    read_code: ReadCode,
) -> Result<Value, Failure> {
    let body = send_text(request, what, redactor, read_code).await?;
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| Failure {
        status: None,
        error: ConnectorError::permanent(
            redactor.redact(&format!("{what}: the answer is not JSON: {e}")),
        ),
    })
}

/// Sends `request` and returns its answer's body as text when its status
/// is a success.
pub(crate) async fn send_text(
    request: RequestBuilder,
    what: &str,
    redactor: &Redactor,
    read_code: ReadCode,
) -> Result<String, Failure> {
    let response = request.send().await.map_err(|e| {
        let connect = e.is_connect();
        let e = e.without_url();
        let message = redactor.redact(&format!("{what}: request failed: {e}"));
        Failure {
            status: None,
            // No connection, so no request reached the vendor.
            error: if connect {
                ConnectorError::not_sent(message)
            } else {
                ConnectorError::transient(message)
            },
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
        Failure {
            status: Some(status),
            error: ConnectorError::transient(
                redactor.redact(&format!("{what}: reading the answer failed: {e}")),
            ),
        }
    })?;
    if status.is_success() {
        return Ok(body);
    }
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|answer| read_code(&answer));
    let error = failure(what, status, &body, code, redactor);
    Err(Failure {
        status: Some(status),
        error: paced(status, error, retry_after),
    })
}

/// The error for an answer with a failing `status` and `body`: the body is
/// redacted whole, then quoted up to [`MAX_QUOTED_BODY`] characters.
/// `error` as the vendor's pacing makes it: a 429 (or a vendor code that
/// says "too many requests": Slack's `ratelimited`, Twilio's 20429) is the
/// vendor pacing us, not its failure, with the wait it asked for; a 503
/// carries its `Retry-After`.
pub(crate) fn paced(
    status: StatusCode,
    error: ConnectorError,
    retry_after: Option<std::time::Duration>,
) -> ConnectorError {
    let vendor_paces = matches!(
        error.vendor(),
        Some(VendorCode::Slack(SlackError::Ratelimited))
            | Some(VendorCode::Twilio(TwilioError::TooManyRequests))
            | Some(VendorCode::Llm(
                LlmError::RateLimitExceeded | LlmError::RateLimit
            ))
    );
    // A 429 whose code says waiting cannot help (OpenAI's
    // `insufficient_quota`) is no pacing: it stays permanent.
    let hopeless = error.vendor().and_then(VendorCode::retry) == Some(Retry::Never);
    if (status == StatusCode::TOO_MANY_REQUESTS && !hopeless) || vendor_paces {
        let vendor = error.vendor().cloned();
        let throttled = ConnectorError::throttled(error.message().to_owned(), retry_after);
        match vendor {
            Some(code) => throttled.with_vendor(code),
            None => throttled,
        }
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        error.with_retry_after(retry_after)
    } else {
        error
    }
}

pub(crate) fn failure(
    what: &str,
    status: StatusCode,
    body: &str,
    code: Option<VendorCode>,
    redactor: &Redactor,
) -> ConnectorError {
    let redacted = redactor.redact(body);
    let quoted: String = redacted.chars().take(MAX_QUOTED_BODY).collect();
    let by_status =
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            // The vendor asks us to come back: it did not act on it.
            Retry::Later
        } else if status.is_server_error() {
            Retry::MayHaveActed
        } else {
            Retry::Never
        };
    let named = code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default();
    let message = redactor.redact(&format!("{what}: HTTP {status}: {named}{quoted}"));
    match code {
        // A 5xx is the vendor failing, whatever code its body names: the
        // status decides (and the breaker counts it); the code is kept.
        Some(code) if !status.is_server_error() => code.error(message, by_status),
        code => {
            let error = match by_status {
                Retry::Later => ConnectorError::not_sent(message),
                Retry::MayHaveActed => ConnectorError::transient(message),
                Retry::Never => ConnectorError::permanent(message),
            };
            match code {
                Some(code) => error.with_vendor(code),
                None => error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use proptest::prelude::*;

    use super::super::redact::RUN;
    use super::*;

    /// The characters of `encoded` (base64 of `prefix` bytes, then the
    /// secret, then more) that encode the secret's bytes alone.
    fn secret_chars(encoded: &str, prefix: usize, secret_len: usize) -> String {
        let first = (8 * prefix).div_ceil(6);
        let end = (8 * (prefix + secret_len)) / 6;
        encoded
            .get(first..end.min(encoded.len()))
            .unwrap_or("")
            .to_owned()
    }

    fn url_encoded(secret: &str) -> String {
        serde_urlencoded::to_string([("k", secret)]).unwrap()[2..].to_owned()
    }

    /// Every run of `RUN` characters of `form` found in `message`.
    fn leaks(message: &str, form: &str) -> Vec<String> {
        let chars: Vec<char> = form.chars().collect();
        chars
            .windows(RUN)
            .map(|w| w.iter().collect::<String>())
            .filter(|w| message.contains(w.as_str()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a vendor's error body holds around an echoed secret,
        /// wherever the cut at 300 characters falls, no run of 5
        /// characters of the secret, of its URL-encoded form or of the
        /// base64 that encodes its bytes (Basic auth's `user:secret`, or
        /// the secret alone at any alignment) is in the message.
        #[test]
        fn no_piece_of_a_secret_reaches_the_message(
            secret in "[A-Za-z0-9/+=._~-]{8,40}",
            user in "[A-Za-z0-9]{0,12}",
            before in "[ -~]{0,400}",
            after in "[ -~é]{0,100}",
            prefix in 0usize..3,
            form in 0usize..5,
            status in prop::sample::select(vec![400u16, 401, 403, 429, 500, 503]),
        ) {
            let basic = STANDARD.encode(format!("{user}:{secret}"));
            let mut shifted = vec![b'x'; prefix];
            shifted.extend_from_slice(secret.as_bytes());
            let shifted = URL_SAFE.encode(&shifted);
            let echoed = match form {
                0 => secret.clone(),
                1 => url_encoded(&secret),
                2 => format!("Basic {basic}"),
                3 => shifted.clone(),
                _ => format!("{{\"token\": {}}}", serde_json::to_string(&secret).unwrap()),
            };
            let body = format!("{before}{echoed}{after}");
            let redactor = Redactor::new([secret.as_str(), "irrelevant-other-secret"]);
            let status = StatusCode::from_u16(status).unwrap();
            let message = failure("vendor op", status, &body, None, &redactor)
                .message()
                .to_owned();
            let forms = [
                secret.clone(),
                url_encoded(&secret),
                secret_chars(&basic, user.len() + 1, secret.len()),
                secret_chars(&shifted, prefix, secret.len()),
            ];
            for form in &forms {
                let leaked = leaks(&message, form);
                prop_assert!(leaked.is_empty(), "{leaked:?} of {form:?} in {message:?}");
            }
            prop_assert!(message.starts_with("vendor op: HTTP "), "{}", message);
        }
    }

    #[test]
    fn a_429_for_a_spent_quota_is_not_pacing() {
        let status = StatusCode::TOO_MANY_REQUESTS;
        let read = |body: &str| {
            let code = super::super::vendor::llm_code(&serde_json::from_str(body).unwrap());
            paced(
                status,
                failure("llm chat", status, body, code, &Redactor::default()),
                None,
            )
        };
        let spent =
            read(r#"{"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}"#);
        assert!(!spent.is_retryable() && !spent.is_throttled(), "{spent}");
        let paced = read(r#"{"error": {"type": "requests", "code": "rate_limit_exceeded"}}"#);
        assert!(paced.is_retryable() && paced.is_throttled(), "{paced}");
    }

    #[test]
    fn a_typed_code_decides_and_is_named() {
        let code = super::super::vendor::twilio_code(&serde_json::json!({"code": 20429}));
        let error = failure(
            "twilio send_sms",
            StatusCode::BAD_REQUEST,
            "{}",
            code,
            &Redactor::default(),
        );
        assert!(error.is_retryable() && !error.may_have_had_effect());
        assert!(
            error.message().contains("twilio error 20429"),
            "{}",
            error.message()
        );
    }
}
