//! The Twilio connector: send SMS (`Accounts/{sid}/Messages.json`,
//! form-encoded), get SMS status, list messages, validate a phone number
//! (E.164, then the Lookup API); HTTP basic auth in live mode.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Client;
use serde_json::{Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, Secret};
use super::{Connector, ConnectorError, http, is_path_safe, mock, required_str, unknown_operation};
use crate::error::{Error, Result};

/// The sender of mock messages (Twilio's magic test number).
const MOCK_FROM: &str = "+15005550006";

/// The Twilio connector (`twilio`).
pub struct Twilio {
    backend: Backend,
}

enum Backend {
    Mock,
    Live(Box<Live>),
}

struct Live {
    client: Client,
    base_url: String,
    lookup_base_url: String,
    account_sid: String,
    auth_token: Secret,
    from: String,
}

/// Whether `number` is in E.164 form: `+`, a non-zero digit, 1 to 14 more.
pub(crate) fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn check_e164(number: &str) -> std::result::Result<(), ConnectorError> {
    if is_e164(number) {
        Ok(())
    } else {
        Err(ConnectorError::permanent(format!(
            "{number:?} is not a phone number in E.164 form (+ and up to 15 digits)"
        )))
    }
}

impl Twilio {
    /// The deterministic mock.
    pub fn mock() -> Self {
        Self {
            backend: Backend::Mock,
        }
    }

    /// Live, against `base_url` (e.g. `https://api.twilio.com/2010-04-01`)
    /// and `lookup_base_url` (e.g. `https://lookups.twilio.com/v2`).
    pub fn live(
        base_url: impl Into<String>,
        lookup_base_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: Secret,
        from: impl Into<String>,
    ) -> Self {
        Self {
            backend: Backend::Live(Box::new(Live {
                client: http::client(),
                base_url: base_url.into().trim_end_matches('/').to_owned(),
                lookup_base_url: lookup_base_url.into().trim_end_matches('/').to_owned(),
                account_sid: account_sid.into(),
                auth_token,
                from: from.into(),
            })),
        }
    }

    /// Mock or live as `config` says.
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced without the account SID,
    /// auth token and sending number.
    pub fn from_config(config: &ConnectorsConfig) -> Result<Self> {
        let t = &config.twilio;
        let creds = match (&t.account_sid, &t.auth_token, &t.from) {
            (Some(sid), Some(token), Some(from)) => Some((sid, token, from)),
            _ => None,
        };
        match (config.mode_for(creds.is_some()), creds) {
            (ConnectorMode::Mock, _) => Ok(Self::mock()),
            (ConnectorMode::Live, Some((sid, token, from))) => Ok(Self::live(
                &t.base_url,
                &t.lookup_base_url,
                sid,
                token.clone(),
                from,
            )),
            (ConnectorMode::Live, None) => Err(Error::Config(
                "live Twilio needs NEONHUB_TWILIO_ACCOUNT_SID, NEONHUB_TWILIO_AUTH_TOKEN and NEONHUB_TWILIO_FROM"
                    .to_owned(),
            )),
        }
    }

    /// Whether this connector calls the real service.
    pub fn is_live(&self) -> bool {
        matches!(self.backend, Backend::Live(_))
    }
}

#[async_trait]
impl Connector for Twilio {
    fn name(&self) -> &str {
        "twilio"
    }

    /// Reads are safe to repeat; every other operation sends something.
    fn is_safe_to_repeat(&self, operation: &str) -> bool {
        matches!(
            operation,
            "sms_status" | "list_messages" | "validate_number"
        )
    }

    async fn call(
        &self,
        operation: &str,
        input: &Value,
    ) -> std::result::Result<Value, ConnectorError> {
        let live = match &self.backend {
            Backend::Mock => return mock_call(operation, input),
            Backend::Live(live) => live,
        };
        let basic = STANDARD.encode(format!("{}:{}", live.account_sid, live.auth_token.expose()));
        let secrets = [live.auth_token.expose(), basic.as_str()];
        let what = format!("twilio {operation}");
        let account = format!("{}/Accounts/{}", live.base_url, live.account_sid);
        let request = match operation {
            "send_sms" => {
                let to = required_str(input, "to")?;
                check_e164(to)?;
                let body = required_str(input, "body")?;
                live.client.post(format!("{account}/Messages.json")).form(&[
                    ("To", to),
                    ("From", live.from.as_str()),
                    ("Body", body),
                ])
            }
            "sms_status" => {
                let sid = required_str(input, "sid")?;
                if !is_path_safe(sid) {
                    return Err(ConnectorError::permanent(format!(
                        "{sid:?} is not a message SID"
                    )));
                }
                live.client.get(format!("{account}/Messages/{sid}.json"))
            }
            "list_messages" => {
                let mut query = vec![(
                    "PageSize",
                    input
                        .get("page_size")
                        .and_then(Value::as_u64)
                        .unwrap_or(20)
                        .to_string(),
                )];
                if let Some(to) = input.get("to").and_then(Value::as_str) {
                    query.push(("To", to.to_owned()));
                }
                live.client
                    .get(format!("{account}/Messages.json"))
                    .query(&query)
            }
            "validate_number" => {
                let number = required_str(input, "number")?;
                if !is_e164(number) {
                    return Ok(json!({ "phone_number": number, "valid": false }));
                }
                let request = live
                    .client
                    .get(format!("{}/PhoneNumbers/{number}", live.lookup_base_url))
                    .basic_auth(&live.account_sid, Some(live.auth_token.expose()));
                let answer = http::send_json(request, &what, &secrets).await?;
                return Ok(json!({
                    "phone_number": answer.get("phone_number").cloned().unwrap_or(json!(number)),
                    "valid": answer.get("valid").and_then(Value::as_bool).unwrap_or(false),
                    "country_code": answer.get("country_code").cloned().unwrap_or(Value::Null),
                }));
            }
            other => return Err(unknown_operation("twilio", other)),
        };
        let request = request.basic_auth(&live.account_sid, Some(live.auth_token.expose()));
        http::send_json(request, &what, &secrets).await
    }
}

fn mock_call(operation: &str, input: &Value) -> std::result::Result<Value, ConnectorError> {
    match operation {
        "send_sms" => {
            let to = required_str(input, "to")?;
            check_e164(to)?;
            let body = required_str(input, "body")?;
            Ok(json!({
                "sid": mock::id("SM", operation, input, 32),
                "status": "queued",
                "to": to,
                "from": MOCK_FROM,
                "body": body,
                "date_created": mock::unix_seconds(operation, input),
            }))
        }
        "sms_status" => {
            let sid = required_str(input, "sid")?;
            Ok(json!({ "sid": sid, "status": "delivered" }))
        }
        "list_messages" => {
            let n = input
                .get("page_size")
                .and_then(Value::as_u64)
                .unwrap_or(3)
                .min(10);
            let messages: Vec<Value> = (0..n)
                .map(|i| {
                    let seed = json!({ "input": input, "i": i });
                    json!({ "sid": mock::id("SM", "message", &seed, 32), "status": "delivered" })
                })
                .collect();
            Ok(json!({ "messages": messages }))
        }
        "validate_number" => {
            let number = required_str(input, "number")?;
            let valid = is_e164(number);
            let country = if !valid {
                Value::Null
            } else if number.starts_with("+1") {
                json!("US")
            } else if number.starts_with("+44") {
                json!("GB")
            } else {
                json!("ZZ")
            };
            Ok(json!({ "phone_number": number, "valid": valid, "country_code": country }))
        }
        other => Err(unknown_operation("twilio", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_recognised() {
        for good in ["+15005550006", "+447911123456", "+33"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "15005550006",
            "+0123",
            "+1",
            "+1234567890123456",
            "+1 500 555",
            "not a number",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn mock_send_sms_refuses_an_invalid_number_permanently() {
        let twilio = Twilio::mock();
        let err = twilio
            .call("send_sms", &json!({"to": "12345", "body": "hi"}))
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        let ok = twilio
            .call("send_sms", &json!({"to": "+15005550006", "body": "hi"}))
            .await
            .unwrap();
        assert_eq!(ok["status"], json!("queued"));
        assert!(ok["sid"].as_str().unwrap().starts_with("SM"));
    }
}
