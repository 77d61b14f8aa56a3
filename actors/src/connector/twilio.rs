//! The Twilio connector: send SMS (`Accounts/{sid}/Messages.json`,
//! form-encoded; a send in doubt is looked for among the messages to the
//! same number since the step started), get SMS status, list messages,
//! validate a phone number (E.164, then the Lookup API); HTTP basic auth in
//! live mode.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Client;
use serde_json::{Value, json};

use super::config::{ConnectorMode, ConnectorsConfig, Secret};
use super::redact::Redactor;
use super::vendor::twilio_code;
use super::{
    Connector, ConnectorError, Reconciled, StepRef, http, is_path_safe, mock, required_str,
    unknown_operation,
};
use crate::error::{Error, Result};

/// The sender of mock messages (Twilio's magic test number).
const MOCK_FROM: &str = "+15005550006";

/// How long before its step started an SMS is looked for: Twilio's clock
/// and ours differ.
const CLOCK_SKEW_MICROS: i64 = 120_000_000;

/// Messages asked for when looking an SMS up (Twilio's largest page).
const LOOKUP_PAGE: usize = 1000;

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
    /// The auth token in every form, Basic auth's base64 included.
    redactor: Redactor,
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
                redactor: Redactor::new([auth_token.expose()]),
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
        match (config.twilio_mode(), creds) {
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

    /// Sends are limited per sending number.
    fn limit_key(&self, operation: &str, input: &Value) -> Option<String> {
        let default = match &self.backend {
            Backend::Mock => MOCK_FROM,
            Backend::Live(live) => live.from.as_str(),
        };
        (operation == "send_sms")
            .then(|| sending_number(input, default).unwrap_or(default).to_owned())
    }

    /// Lookup (`validate_number`) is another service than Messages.
    fn endpoint_group(&self, operation: &str) -> &'static str {
        if operation == "validate_number" {
            "lookup"
        } else {
            "messages"
        }
    }

    /// A `send_sms` is looked for among the messages from the sending
    /// number to the same number sent since the day the step started
    /// (`DateSent>`), matched by body and created at or after a little
    /// before the step started; found, the answer is the message as `send_sms`
    /// answers it, with `"reconciled": true`. A message Twilio still holds
    /// queued (no `date_sent` yet) is not listed under `DateSent>`, so it is
    /// not found: the step then stays in doubt.
    async fn reconcile(&self, step: &StepRef, operation: &str, input: &Value) -> Reconciled {
        let live = match &self.backend {
            Backend::Mock => None,
            Backend::Live(live) => Some(live),
        };
        let live = match Reconciled::lookable("twilio", live, operation, "send_sms") {
            Ok(live) => live,
            Err(refused) => return refused,
        };
        let (to, body) = match (required_str(input, "to"), required_str(input, "body")) {
            (Ok(to), Ok(body)) => (to, body),
            (Err(e), _) | (_, Err(e)) => return Reconciled::Unchecked(e.message().to_owned()),
        };
        let from = match sending_number(input, &live.from) {
            Ok(from) => from,
            Err(e) => return Reconciled::Unchecked(e.message().to_owned()),
        };
        let micros = i64::try_from(step.started_at.as_micros()).unwrap_or(i64::MAX);
        let Some(since) = DateTime::<Utc>::from_timestamp_micros(micros - CLOCK_SKEW_MICROS) else {
            return Reconciled::Unchecked("the step's start time is out of range".to_owned());
        };
        let what = "twilio reconcile send_sms";
        let request = live
            .client
            .get(format!(
                "{}/Accounts/{}/Messages.json",
                live.base_url, live.account_sid
            ))
            .query(&[
                ("To", to.to_owned()),
                ("From", from.to_owned()),
                ("DateSent>", since.format("%Y-%m-%d").to_string()),
                ("PageSize", LOOKUP_PAGE.to_string()),
            ])
            .basic_auth(&live.account_sid, Some(live.auth_token.expose()));
        match http::send_json(request, what, &live.redactor, twilio_code).await {
            Ok(page) => match_sms(what, body, since, &page),
            Err(e) => Reconciled::Unchecked(e.message().to_owned()),
        }
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
        let what = format!("twilio {operation}");
        let account = format!("{}/Accounts/{}", live.base_url, live.account_sid);
        let request = match operation {
            "send_sms" => {
                let to = required_str(input, "to")?;
                check_e164(to)?;
                let body = required_str(input, "body")?;
                let from = sending_number(input, &live.from)?;
                live.client.post(format!("{account}/Messages.json")).form(&[
                    ("To", to),
                    ("From", from),
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
                let answer = http::send_json(request, &what, &live.redactor, twilio_code).await?;
                return Ok(json!({
                    "phone_number": answer.get("phone_number").cloned().unwrap_or(json!(number)),
                    "valid": answer.get("valid").and_then(Value::as_bool).unwrap_or(false),
                    "country_code": answer.get("country_code").cloned().unwrap_or(Value::Null),
                }));
            }
            other => return Err(unknown_operation("twilio", other)),
        };
        let request = request.basic_auth(&live.account_sid, Some(live.auth_token.expose()));
        http::send_json(request, &what, &live.redactor, twilio_code).await
    }
}

/// Which of the messages listed (a page of `Messages.json`) is the SMS with
/// `body` created at or after `since`: exactly one settles it; none is
/// [`Reconciled::NotFound`] if the page holds all there is; several, or a
/// candidate whose date cannot be read, cannot be told apart.
fn match_sms(what: &str, body: &str, since: DateTime<Utc>, page: &Value) -> Reconciled {
    let Some(messages) = page.get("messages").and_then(Value::as_array) else {
        return Reconciled::Unchecked(format!("{what}: the answer has no `messages` list"));
    };
    let mut found = Vec::new();
    for message in messages {
        if message.get("body").and_then(Value::as_str) != Some(body) {
            continue;
        }
        let created = message
            .get("date_created")
            .and_then(Value::as_str)
            .and_then(|date| DateTime::parse_from_rfc2822(date).ok());
        let Some(created) = created else {
            return Reconciled::Unchecked(format!(
                "{what}: a message with the same body has no readable date_created"
            ));
        };
        if created.with_timezone(&Utc) >= since {
            found.push(message);
        }
    }
    let more = page
        .get("next_page_uri")
        .and_then(Value::as_str)
        .is_some_and(|uri| !uri.is_empty());
    match found.as_slice() {
        [] if more => Reconciled::Unchecked(format!(
            "{what}: more than {LOOKUP_PAGE} messages to the number since the step started"
        )),
        [] => Reconciled::NotFound,
        [message] => {
            let mut output = (*message).clone();
            output["reconciled"] = json!(true);
            Reconciled::Found(output)
        }
        several => Reconciled::Unchecked(format!(
            "{what}: {} messages with the same body to the number since the step started",
            several.len()
        )),
    }
}

/// The number a `send_sms` goes out from: the input's `from` (one of the
/// account's numbers, E.164), else `default` (the configured one). The
/// per-number rate limit counts against it.
fn sending_number<'a>(
    input: &'a Value,
    default: &'a str,
) -> std::result::Result<&'a str, ConnectorError> {
    match input.get("from") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(from)) => {
            check_e164(from)?;
            Ok(from)
        }
        Some(_) => Err(ConnectorError::permanent(
            "`from` must be a phone number in E.164 form (+15551234567), one of the account's",
        )),
    }
}

fn mock_call(operation: &str, input: &Value) -> std::result::Result<Value, ConnectorError> {
    match operation {
        "send_sms" => {
            let to = required_str(input, "to")?;
            check_e164(to)?;
            let body = required_str(input, "body")?;
            let from = sending_number(input, MOCK_FROM)?;
            Ok(json!({
                "sid": mock::id("SM", operation, input, 32),
                "status": "queued",
                "to": to,
                "from": from,
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
    fn a_send_goes_from_the_number_it_names_and_is_limited_per_number() {
        let twilio = Twilio::mock();
        let named = json!({"to": "+15551112222", "body": "hi", "from": "+15553334444"});
        let plain = json!({"to": "+15551112222", "body": "hi"});
        assert_eq!(
            twilio.limit_key("send_sms", &named).as_deref(),
            Some("+15553334444")
        );
        assert_eq!(
            twilio.limit_key("send_sms", &plain).as_deref(),
            Some(MOCK_FROM)
        );
        assert_eq!(twilio.limit_key("sms_status", &named), None);
        assert_eq!(
            mock_call("send_sms", &named).unwrap()["from"],
            "+15553334444"
        );
        assert_eq!(mock_call("send_sms", &plain).unwrap()["from"], MOCK_FROM);
        for bad in [json!("5553334444"), json!(15553334444_u64)] {
            let input = json!({"to": "+15551112222", "body": "hi", "from": bad});
            assert!(mock_call("send_sms", &input).is_err(), "{input}");
        }
    }

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

    #[test]
    fn a_listed_message_settles_the_send_only_when_it_is_the_one() {
        let since = DateTime::parse_from_rfc2822("Thu, 24 Aug 2023 05:01:00 +0000")
            .unwrap()
            .with_timezone(&Utc);
        let sms = |sid: &str, body: &str, created: &str| json!({"sid": sid, "status": "sent", "body": body, "date_created": created});
        let after = "Thu, 24 Aug 2023 05:01:45 +0000";
        let before = "Thu, 24 Aug 2023 04:59:59 +0000";
        let page = |messages: Vec<Value>| json!({"messages": messages, "next_page_uri": null});

        let one = page(vec![sms("SM1", "hi", after), sms("SM0", "hi", before)]);
        let Reconciled::Found(found) = match_sms("x", "hi", since, &one) else {
            panic!("{one}")
        };
        assert_eq!(found["sid"], json!("SM1"));
        assert_eq!(found["reconciled"], json!(true));

        let other_body = page(vec![sms("SM1", "hello", after)]);
        assert_eq!(
            match_sms("x", "hi", since, &other_body),
            Reconciled::NotFound
        );
        let two = page(vec![sms("SM1", "hi", after), sms("SM2", "hi", after)]);
        assert!(matches!(
            match_sms("x", "hi", since, &two),
            Reconciled::Unchecked(_)
        ));
        let undated = page(vec![sms("SM1", "hi", "yesterday")]);
        assert!(matches!(
            match_sms("x", "hi", since, &undated),
            Reconciled::Unchecked(_)
        ));
        let more = json!({"messages": [], "next_page_uri": "/2010-04-01/Accounts/AC1/Messages.json?Page=1"});
        assert!(matches!(
            match_sms("x", "hi", since, &more),
            Reconciled::Unchecked(_)
        ));
        assert!(matches!(
            match_sms("x", "hi", since, &json!({})),
            Reconciled::Unchecked(_)
        ));
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
