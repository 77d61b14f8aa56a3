//! Anchors: the embedded log's head (a position and the hash chain's value
//! there) written down outside neonhub, so that `audit verify --anchor`
//! proves later that the log still holds that history, uncut and unrewritten.

use std::fmt;

use neonhub_events::Position;
use serde_json::{Value, json};

/// A point of the log's history: the event at `position` and the hash
/// chain's value up to and including it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The last event's position when the anchor was taken.
    pub position: Position,
    /// The chain value of that event.
    pub hash: [u8; 32],
    /// How many events the log held (`position + 1`), if given.
    pub events: Option<u64>,
    /// When it was taken (RFC 3339), if given; shown, never checked.
    pub at: Option<String>,
}

impl Anchor {
    /// The anchor as one line of JSON, its fields in this order:
    /// `{"position": P, "hash": "<hex>", "events": N, "at": "<RFC 3339>"}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"position\": {}, \"hash\": \"{}\", \"events\": {}, \"at\": {}}}",
            self.position.0,
            self.hash_hex(),
            json!(self.events),
            json!(self.at)
        )
    }

    /// The hash in lower-case hex.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }

    /// Parses an `--anchor` argument: the JSON itself, or `@FILE` to read it
    /// from a file. The error says what is wrong and what is expected.
    ///
    /// # Errors
    /// A message for people: an unreadable file, not JSON, a missing or
    /// malformed field.
    pub fn parse_arg(arg: &str) -> Result<Self, String> {
        let (text, from) = match arg.strip_prefix('@') {
            Some(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the anchor file {path:?}: {e}"))?,
                format!(" in {path}"),
            ),
            None => (arg.to_owned(), String::new()),
        };
        let expected = r#"expected {"position": P, "hash": "<64 hex digits>", "events": N, "at": "<RFC 3339>"} as `neonhub audit anchor --format json` prints it"#;
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("the anchor{from} is not valid JSON ({e}); {expected}"))?;
        let Some(object) = value.as_object() else {
            return Err(format!("the anchor{from} is not a JSON object; {expected}"));
        };
        let position = match object.get("position") {
            Some(p) => p.as_u64().ok_or_else(|| {
                format!("the anchor{from} has \"position\": {p}, not a whole number of 0 or more; {expected}")
            })?,
            None => return Err(format!("the anchor{from} has no \"position\"; {expected}")),
        };
        let hash = match object.get("hash") {
            Some(Value::String(h)) => parse_hash(h).ok_or_else(|| {
                format!(
                    "the anchor{from} has \"hash\": {h:?}, not 64 hex digits (a SHA-256 chain value); {expected}"
                )
            })?,
            Some(h) => {
                return Err(format!(
                    "the anchor{from} has \"hash\": {h}, not a string; {expected}"
                ));
            }
            None => return Err(format!("the anchor{from} has no \"hash\"; {expected}")),
        };
        let events = match object.get("events") {
            None | Some(Value::Null) => None,
            Some(n) => {
                let n = n.as_u64().ok_or_else(|| {
                    format!("the anchor{from} has \"events\": {n}, not a whole number; {expected}")
                })?;
                if n != position + 1 {
                    return Err(format!(
                        "the anchor{from} has \"events\": {n} but \"position\": {position}; the events up to and including position {position} are {}",
                        position + 1
                    ));
                }
                Some(n)
            }
        };
        let at = match object.get("at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(format!(
                    "the anchor{from} has \"at\": {v}, not a string; {expected}"
                ));
            }
        };
        Ok(Anchor {
            position: Position(position),
            hash,
            events,
            at,
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "position {} hash {}", self.position, self.hash_hex())?;
        if let Some(at) = &self.at {
            write!(f, " (taken {at})")?;
        }
        Ok(())
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_round_trips_through_its_json() {
        let anchor = Anchor {
            position: Position(7),
            hash: [0xab; 32],
            events: Some(8),
            at: Some("2026-11-30T04:00:00Z".into()),
        };
        let text = anchor.to_json();
        assert!(
            text.starts_with(r#"{"position": 7, "hash": "abab"#),
            "{text}"
        );
        assert_eq!(Anchor::parse_arg(&text).unwrap(), anchor);
    }

    #[test]
    fn bad_anchors_say_what_is_wrong() {
        let hash = "ab".repeat(32);
        for (arg, says) in [
            ("not json", "is not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"hash": "ab"}"#, "has no \"position\""),
            (r#"{"position": -1, "hash": "ab"}"#, "not a whole number"),
            (r#"{"position": 1}"#, "has no \"hash\""),
            (r#"{"position": 1, "hash": "xyz"}"#, "not 64 hex digits"),
            (
                &format!(r#"{{"position": 1, "hash": "{hash}", "events": 5}}"#),
                "\"events\": 5 but",
            ),
            ("@/nonexistent/anchor.json", "cannot read the anchor file"),
        ] {
            let err = Anchor::parse_arg(arg).unwrap_err();
            assert!(err.contains(says), "{arg}: {err}");
        }
        assert!(Anchor::parse_arg(&format!(r#"{{"position": 1, "hash": "{hash}"}}"#)).is_ok());
    }
}
