//! Deterministic mock answers: ids and timestamps derived from a hash of the
//! operation and its input, so the same input always gives the same output.

use serde_json::Value;

/// A hash of `operation` and `input` (canonical JSON: serde_json sorts no
/// keys, but the same `Value` always serializes the same way).
pub(crate) fn digest(operation: &str, input: &Value) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(operation.as_bytes());
    hasher.update(&[0]);
    hasher.update(input.to_string().as_bytes());
    hasher.finalize()
}

/// `len` lowercase hex characters of the digest, after `prefix`.
pub(crate) fn id(prefix: &str, operation: &str, input: &Value, len: usize) -> String {
    let hex = digest(operation, input).to_hex();
    format!("{prefix}{}", &hex.as_str()[..len.min(64)])
}

/// A stable Unix time in seconds (in 2023–2024) for this input.
pub(crate) fn unix_seconds(operation: &str, input: &Value) -> u64 {
    let bytes = digest(operation, input);
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes.as_bytes()[..8]);
    1_672_531_200 + u64::from_le_bytes(n) % 31_536_000
}

/// A small stable number below `modulo` for this input.
pub(crate) fn number(operation: &str, input: &Value, modulo: u64) -> u64 {
    let bytes = digest(operation, input);
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes.as_bytes()[8..16]);
    u64::from_le_bytes(n) % modulo.max(1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_input_gives_the_same_id_and_time() {
        let a = json!({"to": "a@example.com", "body": "hi"});
        assert_eq!(id("m", "send", &a, 16), id("m", "send", &a.clone(), 16));
        assert_eq!(unix_seconds("send", &a), unix_seconds("send", &a));
        let b = json!({"to": "b@example.com", "body": "hi"});
        assert_ne!(id("m", "send", &a, 16), id("m", "send", &b, 16));
        assert_ne!(id("m", "send", &a, 16), id("m", "get", &a, 16));
    }
}
