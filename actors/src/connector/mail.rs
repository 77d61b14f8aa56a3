//! The RFC 5322 message Gmail's `send` takes: header values one line each
//! (a CR or LF would start another header, so it is refused), non-ASCII
//! text in headers as RFC 2047 encoded words, CRLF line endings throughout,
//! and a body in 7bit, 8bit or base64 as its content needs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{ConnectorError, required_str};

/// The most bytes of text one encoded word carries: 45 bytes are 60 base64
/// characters, and `=?UTF-8?B?` + 60 + `?=` is 72, under RFC 2047's 75.
const WORD_BYTES: usize = 45;

/// The longest line RFC 5322 allows, without its CRLF.
const MAX_LINE: usize = 998;

/// Base64 body lines are this long (RFC 2045).
const BASE64_LINE: usize = 76;

/// The message for a `send` input: `to`, `subject`, `body` and an optional
/// `from`; with `message_id` when the send is a step.
///
/// # Errors
/// Permanent, and before anything is sent: a header value with a CR or LF,
/// an address that is not one, or one with non-ASCII characters (RFC 2047
/// covers display names, not addresses).
pub(crate) fn message(input: &Value, message_id: Option<&str>) -> Result<String, ConnectorError> {
    let Headers {
        to,
        from,
        subject,
        body,
    } = headers(input)?;
    let mut message = String::new();
    if let Some(from) = from {
        header(&mut message, "From", &from);
    }
    header(&mut message, "To", &to);
    header(&mut message, "Subject", &text(subject));
    if let Some(id) = message_id {
        header(&mut message, "Message-ID", id);
    }
    let body = crlf(body);
    let too_long = body.split("\r\n").any(|line| line.len() > MAX_LINE);
    let encoding = if too_long {
        "base64"
    } else if body.is_ascii() {
        "7bit"
    } else {
        "8bit"
    };
    header(&mut message, "MIME-Version", "1.0");
    header(
        &mut message,
        "Content-Type",
        "text/plain; charset=\"UTF-8\"",
    );
    header(&mut message, "Content-Transfer-Encoding", encoding);
    message.push_str("\r\n");
    if too_long {
        let encoded = STANDARD.encode(body.as_bytes());
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(BASE64_LINE)
            .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
            .collect();
        message.push_str(&lines.join("\r\n"));
    } else {
        message.push_str(&body);
    }
    Ok(message)
}

/// Whether [`message`] would build a message for `input`, without
/// building it (the mock's `send` refuses what a live one would).
///
/// # Errors
/// As [`message`]'s.
pub(crate) fn check(input: &Value) -> Result<(), ConnectorError> {
    headers(input).map(|_| ())
}

/// A `send` input's fields, checked: the addresses as header values.
struct Headers<'a> {
    to: String,
    from: Option<String>,
    subject: &'a str,
    body: &'a str,
}

/// Every check [`message`] makes, in its order.
fn headers(input: &Value) -> Result<Headers<'_>, ConnectorError> {
    let to = required_str(input, "to")?;
    let subject = input.get("subject").and_then(Value::as_str).unwrap_or("");
    let body = input.get("body").and_then(Value::as_str).unwrap_or("");
    let from = input.get("from").and_then(Value::as_str);
    for (name, value) in [("to", Some(to)), ("from", from), ("subject", Some(subject))] {
        if value.is_some_and(|v| v.contains(['\r', '\n'])) {
            return Err(ConnectorError::permanent(format!(
                "the {name} header must be one line: a CR or LF in it would start another header"
            )));
        }
    }
    Ok(Headers {
        from: from.map(|from| address("from", from)).transpose()?,
        to: address("to", to)?,
        subject,
        body,
    })
}

fn header(message: &mut String, name: &str, value: &str) {
    message.push_str(name);
    message.push_str(": ");
    message.push_str(value);
    message.push_str("\r\n");
}

/// `text` with every line ending (LF, CR or CRLF) made CRLF.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// An unstructured header value: as it is if ASCII, else RFC 2047 encoded
/// words (`=?UTF-8?B?...?=`), each at most [`WORD_BYTES`] of text and cut
/// between characters, folded onto continuation lines.
pub(crate) fn text(value: &str) -> String {
    if value.is_ascii() {
        return value.to_owned();
    }
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in value.char_indices() {
        if i + c.len_utf8() - start > WORD_BYTES {
            words.push(encoded_word(&value[start..end]));
            start = i;
        }
        end = i + c.len_utf8();
    }
    words.push(encoded_word(&value[start..end]));
    words.join("\r\n ")
}

fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", STANDARD.encode(text.as_bytes()))
}

/// An address header value (`ada@example.com` or `Ada <ada@example.com>`),
/// with a non-ASCII display name as encoded words.
fn address(name: &str, value: &str) -> Result<String, ConnectorError> {
    let value = value.trim();
    let (display, addr) = match value.strip_suffix('>').and_then(|v| v.rsplit_once('<')) {
        Some((display, addr)) => (Some(display.trim()), addr.trim()),
        None => (None, value),
    };
    let valid = addr
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !addr.contains([' ', '<', '>', ','])
        && !addr.chars().any(char::is_control);
    if !valid {
        return Err(ConnectorError::permanent(format!(
            "the {name} address {value:?} is not an email address"
        )));
    }
    if !addr.is_ascii() {
        return Err(ConnectorError::permanent(format!(
            "the {name} address {addr:?} has non-ASCII characters, which cannot be sent"
        )));
    }
    Ok(match display {
        None => addr.to_owned(),
        Some("") => format!("<{addr}>"),
        Some(display) if display.is_ascii() => format!("{display} <{addr}>"),
        Some(display) => {
            let display = display.trim_matches('"');
            format!("{} <{addr}>", text(display))
        }
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Decodes a header value made of encoded words (as a mail reader does).
    fn decode(value: &str) -> String {
        value
            .split("\r\n ")
            .map(|word| {
                let b64 = word
                    .strip_prefix("=?UTF-8?B?")
                    .and_then(|w| w.strip_suffix("?="))
                    .unwrap_or_else(|| panic!("not an encoded word: {word:?}"));
                String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
            })
            .collect()
    }

    #[test]
    fn non_ascii_headers_are_encoded_words() {
        let m = message(
            &json!({"to": "a@example.com", "from": "Zoë Ünal <z@example.com>",
                    "subject": "Café ☕ déjà vu", "body": "B"}),
            None,
        )
        .unwrap();
        let (head, _) = m.split_once("\r\n\r\n").unwrap();
        assert!(head.is_ascii(), "{m}");
        assert!(
            m.contains("\r\nSubject: =?UTF-8?B?Q2Fmw6kg4piVIGTDqWrDoCB2dQ==?=\r\n"),
            "{m}"
        );
        assert!(
            m.starts_with("From: =?UTF-8?B?Wm/DqyDDnG5hbA==?= <z@example.com>\r\n"),
            "{m}"
        );
    }

    #[test]
    fn line_endings_are_crlf_and_header_breaks_are_refused() {
        let m = message(
            &json!({"to": "a@example.com", "subject": "S", "body": "one\ntwo\rthree\r\nfour"}),
            None,
        )
        .unwrap();
        assert!(m.ends_with("\r\n\r\none\r\ntwo\r\nthree\r\nfour"), "{m}");
        assert!(!m.replace("\r\n", "").contains(['\r', '\n']), "{m:?}");
        for bad in [
            json!({"to": "a@example.com", "subject": "S\r\nBcc: x@y.z"}),
            json!({"to": "a@example.com", "subject": "S\nBcc: x@y.z"}),
            json!({"to": "a@example.com", "from": "me@example.com\nBcc: x@y.z"}),
            json!({"to": "a@example.com\rBcc: x@y.z"}),
            json!({"to": "nobody"}),
            json!({"to": "ü@exämple.com"}),
        ] {
            let error = message(&bad, None).unwrap_err();
            assert!(!error.is_retryable(), "{bad}");
            assert!(!error.may_have_had_effect(), "{bad}");
        }
    }

    #[test]
    fn a_body_with_an_overlong_line_goes_as_base64() {
        let body = "x".repeat(2000);
        let m = message(&json!({"to": "a@example.com", "body": body}), None).unwrap();
        assert!(m.contains("Content-Transfer-Encoding: base64\r\n"), "{m}");
        let (_, encoded) = m.split_once("\r\n\r\n").unwrap();
        assert!(encoded.split("\r\n").all(|l| l.len() <= BASE64_LINE));
        let decoded = STANDARD.decode(encoded.replace("\r\n", "")).unwrap();
        assert_eq!(decoded, body.as_bytes());
    }

    proptest! {
        /// Any subject comes back whole from its encoded words, each at
        /// most 75 characters, the message all ASCII in its headers.
        #[test]
        fn encoded_words_round_trip(subject in "\\PC{1,200}") {
            prop_assume!(!subject.is_ascii() && !subject.contains(['\r', '\n']));
            let encoded = text(&subject);
            prop_assert!(encoded.is_ascii());
            for word in encoded.split("\r\n ") {
                prop_assert!(word.len() <= 75, "{}", word);
            }
            prop_assert_eq!(decode(&encoded), subject);
        }

        /// The mock's `check` refuses exactly what `message` refuses, with
        /// the same message.
        #[test]
        fn check_refuses_what_message_refuses(
            to in prop_oneof![Just(None), "[a-z@ <>,\r\né.]{0,12}".prop_map(Some)],
            from in prop_oneof![Just(None), "[a-z@ <>\"\né.]{0,12}".prop_map(Some)],
            subject in prop_oneof![Just(None), "[a-z\r\né]{0,8}".prop_map(Some)],
            body in prop_oneof![Just(None), "[a-z\r\n]{0,8}".prop_map(Some)],
        ) {
            let mut input = serde_json::Map::new();
            for (key, value) in [("to", to), ("from", from), ("subject", subject), ("body", body)] {
                if let Some(value) = value {
                    input.insert(key.to_owned(), Value::String(value));
                }
            }
            let input = Value::Object(input);
            let checked = check(&input).map_err(|e| e.message().to_owned());
            let built = message(&input, None).map(|_| ()).map_err(|e| e.message().to_owned());
            prop_assert_eq!(checked, built);
        }
    }
}
