//! A JSON value decoded straight to its text: what a run's input or output
//! is when a reader only compares or shows it (`audit verify`), without the
//! tree [`serde_json::Value`] builds and the pass that writes it out.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A JSON value as compact JSON text (UTF-8).
///
/// It accepts exactly what [`serde_json::Value`] accepts (a map key must be
/// a string; bytes are refused; a non-finite float becomes `null`) and, for
/// a payload this crate wrote, its text is byte for byte what
/// `serde_json::to_vec(&value)` gives for the decoded `Value`: the encoder
/// wrote the map's keys in `Value`'s (sorted) order. A payload written by
/// hand with unsorted or repeated keys gives other text for an equal value
/// (keys in their order, each one kept), so compare as text first and parse
/// only when the texts differ.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Box<[u8]>);

impl JsonText {
    /// The text's bytes (UTF-8 JSON).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, as a boxed slice of bytes.
    pub fn into_bytes(self) -> Box<[u8]> {
        self.0
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for JsonText {
    /// As the value it holds (parsed back: encoding is not what it is for).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value =
            serde_json::from_slice(&self.0).map_err(serde::ser::Error::custom)?;
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Writer(&mut out).deserialize(deserializer)?;
        Ok(JsonText(out.into_boxed_slice()))
    }
}

/// Writes the value it visits to the buffer as JSON.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        serde_json::to_writer(&mut *self.0, value).expect("writing JSON to memory");
    }
}

impl<'de> DeserializeSeed<'de> for Writer<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Writer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(mut self, v: bool) -> Result<(), E> {
        self.json(&v);
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.json(&v);
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.json(&v);
        Ok(())
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        // As `Value` does: a float JSON cannot hold is null.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.json(&n),
            None => self.0.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.json(v);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let at = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Writer(self.0))?.is_none() {
                self.0.truncate(at);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        loop {
            let at = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if map.next_key_seed(Key(self.0))?.is_none() {
                self.0.truncate(at);
                break;
            }
            self.0.push(b':');
            map.next_value_seed(Writer(self.0))?;
            first = false;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// Writes a map key, which must be a string (as `Value` requires).
struct Key<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, v).expect("writing JSON to memory");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    proptest! {
        /// What the codec writes decodes to the text `serde_json` writes
        /// for the decoded `Value`, byte for byte.
        #[test]
        fn text_is_what_value_writes(value in crate::codec::tests::json()) {
            let payload = rmp_serde::to_vec_named(&value).unwrap();
            let text: JsonText = rmp_serde::from_slice(&payload).unwrap();
            let through_value: Value = rmp_serde::from_slice(&payload).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(text.as_bytes()),
                serde_json::to_string(&through_value).unwrap()
            );
        }
    }

    #[test]
    fn refuses_what_value_refuses() {
        // A map with an integer key, and bytes.
        let mut int_key = Vec::new();
        rmp::encode::write_map_len(&mut int_key, 1).unwrap();
        rmp::encode::write_uint(&mut int_key, 7).unwrap();
        rmp::encode::write_nil(&mut int_key).unwrap();
        let mut bytes = Vec::new();
        rmp::encode::write_bin(&mut bytes, b"raw").unwrap();
        for payload in [int_key, bytes] {
            assert!(rmp_serde::from_slice::<Value>(&payload).is_err());
            assert!(rmp_serde::from_slice::<JsonText>(&payload).is_err());
        }
    }

    #[test]
    fn non_finite_floats_are_null_and_nesting_is_kept() {
        let mut nan = Vec::new();
        rmp::encode::write_f64(&mut nan, f64::NAN).unwrap();
        let text: JsonText = rmp_serde::from_slice(&nan).unwrap();
        assert_eq!(text.as_bytes(), b"null");
        let value = json!({"a": [1, -2, 2.5, "x\"\n", null, {}, []], "b": {"c": true}});
        let payload = rmp_serde::to_vec_named(&value).unwrap();
        let text: JsonText = rmp_serde::from_slice(&payload).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(text.as_bytes()).unwrap(),
            value
        );
    }
}
