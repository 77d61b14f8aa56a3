//! Given live Slack and Twilio connectors against a local server answering
//! with each vendor's own error shapes (Slack's `ok: false` with an
//! `error`, over HTTP 200 or 429; Twilio's `{"code", "message",
//! "more_info", "status"}`), when they are called, then each failure
//! carries the vendor's code typed ([`VendorCode`]) and says whether
//! retrying can help, and whether the request may have had its effect, as
//! the code means it, even where the HTTP status alone would say otherwise
//! (Twilio's 21611, a full queue, is a 400 that is worth retrying).

use neonhub_actors::{
    Connector, ConnectorError, Retry, Secret, Slack, SlackError, Twilio, TwilioError, VendorCode,
};
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

/// `(retryable, may have had its effect)` of an error.
fn shape(error: &ConnectorError) -> (bool, bool) {
    (error.is_retryable(), error.may_have_had_effect())
}

#[actix::test]
async fn slack_ok_false_errors_are_typed() {
    let server = TestServer::start(|req| {
        let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let channel = body["channel"].as_str().unwrap_or_default().to_owned();
        match channel.as_str() {
            // Slack's rate limit over HTTP 429; an unknown code over a 503.
            "429" => (
                429,
                json!({"ok": false, "error": "ratelimited"}).to_string(),
            ),
            "503" => (503, json!({"ok": false, "error": "brand_new"}).to_string()),
            _ => (200, json!({"ok": false, "error": channel}).to_string()),
        }
    });
    let slack = Slack::live(&server.base_url, Secret::new("xoxb-typed-0001"));
    let cases = [
        (
            "channel_not_found",
            SlackError::ChannelNotFound,
            Retry::Never,
        ),
        ("not_in_channel", SlackError::NotInChannel, Retry::Never),
        ("invalid_auth", SlackError::InvalidAuth, Retry::Never),
        ("ratelimited", SlackError::Ratelimited, Retry::Later),
        (
            "internal_error",
            SlackError::InternalError,
            Retry::MayHaveActed,
        ),
        (
            "brand_new_code",
            SlackError::Other("brand_new_code".to_owned()),
            Retry::Never,
        ),
    ];
    for (code, typed, retry) in cases {
        let error = slack
            .call("post_message", &json!({"channel": code, "text": "hi"}))
            .await
            .unwrap_err();
        assert_eq!(error.vendor(), Some(&VendorCode::Slack(typed)), "{code}");
        assert_eq!(
            error.vendor().unwrap().retry().unwrap_or(Retry::Never),
            retry,
            "{code}"
        );
        let expected = match retry {
            Retry::Never => (false, false),
            Retry::Later => (true, false),
            Retry::MayHaveActed => (true, true),
        };
        assert_eq!(shape(&error), expected, "{code}: {error}");
        assert!(error.message().contains(code), "{error}");
    }
    // Over an HTTP error status, a known code decides, an unknown one
    // leaves it to the status.
    let limited = slack
        .call("post_message", &json!({"channel": "429", "text": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(shape(&limited), (true, false), "{limited}");
    assert_eq!(
        limited.vendor(),
        Some(&VendorCode::Slack(SlackError::Ratelimited))
    );
    let unavailable = slack
        .call("post_message", &json!({"channel": "503", "text": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(shape(&unavailable), (true, false), "{unavailable}");
    server.stop().await;
}

#[actix::test]
async fn twilio_error_codes_are_typed() {
    let server = TestServer::start(|req| {
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&req.body).unwrap();
        let body = &form.iter().find(|(k, _)| k == "Body").unwrap().1;
        let (status, code): (u16, u32) = match body.as_str() {
            "invalid-to" => (400, 21211),
            "unsubscribed" => (400, 21610),
            "too-many" => (429, 20429),
            "queue-full" => (400, 21611),
            "internal" => (500, 20500),
            _ => (400, 12345),
        };
        let answer = json!({
            "code": code,
            "message": "refused by the fake",
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        });
        (status, answer.to_string())
    });
    let twilio = Twilio::live(
        &server.base_url,
        &server.base_url,
        "AC0123",
        Secret::new("5b1e0c9d7a3f42e68c0d1b2a9e7f3c41"),
        "+15005550006",
    );
    let cases = [
        ("invalid-to", TwilioError::InvalidToNumber, (false, false)),
        ("unsubscribed", TwilioError::Unsubscribed, (false, false)),
        ("too-many", TwilioError::TooManyRequests, (true, false)),
        ("queue-full", TwilioError::QueueFull, (true, false)),
        ("internal", TwilioError::InternalServerError, (true, true)),
        ("unknown", TwilioError::Other(12345), (false, false)),
    ];
    for (body, typed, expected) in cases {
        let error = twilio
            .call("send_sms", &json!({"to": "+15005550009", "body": body}))
            .await
            .unwrap_err();
        assert_eq!(error.vendor(), Some(&VendorCode::Twilio(typed)), "{body}");
        assert_eq!(shape(&error), expected, "{body}: {error}");
        let code = error.vendor().unwrap().to_string();
        assert!(error.message().contains(&code), "{error}");
    }
    server.stop().await;
}
