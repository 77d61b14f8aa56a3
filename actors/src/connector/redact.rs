//! Scrubbing credentials out of text a vendor sends back (an error body
//! that echoes the request): every run of [`RUN`] characters of a secret's
//! plain, URL-encoded, JSON-escaped or base64 form (at each of base64's
//! three alignments, which covers Basic auth's `base64(user:secret)`) is
//! hidden, so no cut, wherever it falls, leaves a usable piece behind.
//! The price: other text that shares a run of 5 characters with a secret is
//! hidden too (rare with random credentials).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The shortest run of a secret's form that is hidden: any run this long
/// that belongs to a form of a secret never reaches the text that comes out.
pub(crate) const RUN: usize = 5;

/// Secrets shorter than this are not looked for (they would hide ordinary
/// words); no real credential is this short.
const MIN_SECRET: usize = 4;

/// What replaces each hidden stretch of text.
const MASK: &str = "***";

/// The credentials of one connector call, ready to be scrubbed out of text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    /// Every run of [`RUN`] bytes of every form of every secret.
    windows: HashSet<[u8; RUN]>,
    /// Forms shorter than [`RUN`] (of short secrets), hidden whole.
    short: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets` (blank or very short ones are skipped).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut redactor = Self::default();
        for secret in secrets {
            if secret.len() < MIN_SECRET {
                continue;
            }
            for form in forms(secret) {
                redactor.add(&form);
            }
        }
        redactor
    }

    fn add(&mut self, form: &str) {
        let bytes = form.as_bytes();
        if bytes.len() < RUN {
            if !bytes.is_empty() && !self.short.iter().any(|s| s == form) {
                self.short.push(form.to_owned());
            }
            return;
        }
        for window in bytes.windows(RUN) {
            let mut run = [0; RUN];
            run.copy_from_slice(window);
            self.windows.insert(run);
        }
    }

    /// `text` with every stretch that holds a run of a secret's form
    /// replaced by `***` (widened to whole characters).
    pub(crate) fn redact(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        let mut hide = vec![false; bytes.len()];
        let mut any = false;
        for (i, window) in bytes.windows(RUN).enumerate() {
            let mut run = [0; RUN];
            run.copy_from_slice(window);
            if self.windows.contains(&run) {
                hide[i..i + RUN].fill(true);
                any = true;
            }
        }
        for short in &self.short {
            for (i, found) in text.match_indices(short.as_str()) {
                hide[i..i + found.len()].fill(true);
                any = true;
            }
        }
        if !any {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut hiding = false;
        for (i, c) in text.char_indices() {
            if hide[i..i + c.len_utf8()].contains(&true) {
                if !hiding {
                    out.push_str(MASK);
                    hiding = true;
                }
            } else {
                out.push(c);
                hiding = false;
            }
        }
        out
    }
}

/// The forms a secret may take in a request and so in an echo of it:
/// plain; URL-encoded (RFC 3986 and form encoding, upper- and lower-case
/// hex); JSON-escaped; and base64 (standard and URL-safe alphabets) at each
/// of the three alignments it can start at inside a longer encoded string,
/// keeping only the characters that encode the secret's bytes alone.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for form_encoding in [false, true] {
        let upper = percent_encode(secret, form_encoding);
        forms.push(lower_hex(&upper));
        forms.push(upper);
    }
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json.trim_matches('"').to_owned());
    }
    for offset in 0..3 {
        forms.extend(base64_cores(secret.as_bytes(), offset));
    }
    forms.dedup();
    forms
}

/// `secret` percent-encoded: RFC 3986's unreserved characters as they are,
/// or (`form_encoding`) `application/x-www-form-urlencoded`'s (`*` kept,
/// `~` encoded, space as `+`).
fn percent_encode(secret: &str, form_encoding: bool) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for b in secret.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (!form_encoding && b == b'~')
            || (form_encoding && b == b'*');
        if plain {
            out.push(char::from(b));
        } else if form_encoding && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `encoded` with the hex digits of its `%XX` escapes in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut escape = 0;
    for c in encoded.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The base64 characters (standard and URL-safe) that encode `secret`'s
/// bytes alone when `offset` bytes of something else come before it: the
/// characters that also hold bits of the neighbouring bytes depend on them,
/// and are left out.
fn base64_cores(secret: &[u8], offset: usize) -> Vec<String> {
    let mut input = vec![0u8; offset];
    input.extend_from_slice(secret);
    let first_bit = 8 * offset;
    let end_bit = 8 * input.len();
    // Character t covers bits [6t, 6t + 6).
    let first = first_bit.div_ceil(6);
    let end = end_bit / 6;
    if end <= first {
        return Vec::new();
    }
    [STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .map(|engine| engine.encode(&input)[first..end].to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn every_form_of_a_secret_is_hidden() {
        let secret = "tok/en+9~x y";
        let r = Redactor::new([secret, ""]);
        for form in [
            secret.to_owned(),
            "tok%2Fen%2B9~x%20y".to_owned(),
            "tok%2fen%2b9%7ex+y".to_owned(),
        ] {
            let text = format!("before {form} after");
            assert_eq!(r.redact(&text), "before *** after", "{form}");
        }
        // In base64, only the characters that hold bits of the neighbours
        // (`AC42:` and the padding here) may stay.
        let basic = STANDARD.encode(format!("AC42:{secret}"));
        assert_eq!(basic, "QUM0Mjp0b2svZW4rOX54IHk=");
        assert_eq!(r.redact(&basic), "QUM0Mjp***k=");
        let shifted = URL_SAFE_NO_PAD.encode(format!("xx{secret}"));
        assert_eq!(shifted, "eHh0b2svZW4rOX54IHk");
        assert_eq!(r.redact(&shifted), "eHh***k");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_json_escaped_secret_is_hidden() {
        let r = Redactor::new([r#"pa"ss\word"#]);
        assert_eq!(
            r.redact(r#"{"token": "pa\"ss\\word"}"#),
            r#"{"token": "***"}"#
        );
    }

    #[test]
    fn a_piece_of_a_secret_is_hidden_too() {
        let r = Redactor::new(["abcdefghijkl"]);
        assert_eq!(r.redact("cut: abcdefg"), "cut: ***");
        assert_eq!(r.redact("cut: hijkl."), "cut: ***.");
        assert_eq!(r.redact("short abcd is kept"), "short abcd is kept");
    }

    #[test]
    fn hidden_stretches_keep_whole_characters() {
        let r = Redactor::new(["séсrets-1"]);
        assert_eq!(r.redact("é séсrets-1 é"), "é *** é");
    }
}
