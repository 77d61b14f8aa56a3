//! Deterministic mock answers: ids and timestamps derived from a hash of the
//! operation and its input, so the same input always gives the same output.

use serde_json::Value;

/// A hash of `operation` and `input` (canonical JSON: serde_json sorts no
/// keys, but the same `Value` always serializes the same way).
pub(crate) fn digest(operation: &str, input: &Value) -> blake3::Hash {
    digest_json(operation, &json(input))
}

/// `input` as the compact JSON text the digests hash (what `Value`'s
/// `Display` writes, without its formatter's overhead): serialize it once
/// where several ids derive from one input.
pub(crate) fn json(input: &Value) -> Vec<u8> {
    serde_json::to_vec(input).expect("a Value always serializes")
}

/// [`digest`] of an input already serialized by [`json`].
pub(crate) fn digest_json(operation: &str, json: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(operation.as_bytes());
    hasher.update(&[0]);
    hasher.update(json);
    hasher.finalize()
}

/// `len` lowercase hex characters of the digest, after `prefix`.
pub(crate) fn id(prefix: &str, operation: &str, input: &Value, len: usize) -> String {
    id_json(prefix, operation, &json(input), len)
}

/// [`id`] of an input already serialized by [`json`].
pub(crate) fn id_json(prefix: &str, operation: &str, json: &[u8], len: usize) -> String {
    let hex = digest_json(operation, json).to_hex();
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

    #[test]
    fn ids_hash_the_text_display_writes() {
        // The mock's recorded ids stay what they were when the digest
        // hashed `input.to_string()`.
        let input = json!({"to": "a@example.com", "body": "é \" \n", "n": [1, 2.5, null]});
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"send\0");
        hasher.update(input.to_string().as_bytes());
        let hex = hasher.finalize().to_hex();
        assert_eq!(id("", "send", &input, 16), &hex.as_str()[..16]);
        assert_eq!(json(&input), input.to_string().into_bytes());
    }
}
