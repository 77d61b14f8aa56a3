//! Credentials in the configuration file: never written in it, only named.
//! `key = { env = "VAR" }` reads the environment variable `VAR`,
//! `key = { file = "/run/secrets/name" }` reads the file, when the file is
//! read (so `config check` and start-up refuse one that is missing).

use std::fmt;
use std::path::PathBuf;

use super::{ConfigError, Locator};

/// Where a credential named in the file is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// `{ env = "VAR" }`: the environment variable `VAR`.
    Env(String),
    /// `{ file = "/run/secrets/name" }`: the file's text, without its
    /// trailing line break.
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    /// As the file writes it: `{ env = "VAR" }` or `{ file = "..." }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "{{ env = {name:?} }}"),
            SecretSource::File(path) => write!(f, "{{ file = {:?} }}", path.display().to_string()),
        }
    }
}

/// A credential the file names, read from its source. Its `Debug` shows the
/// source, never the value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FileSecret {
    source: SecretSource,
    value: String,
}

impl FileSecret {
    /// The value, to hand to the connector (which keeps it in a `Secret`)
    /// or the store; never for messages.
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSecret({}, ***)", self.source)
    }
}

impl fmt::Display for FileSecret {
    /// As `config show` prints it: the source, masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  # ***", self.source)
    }
}

/// How to write a credential, for messages about `key`.
fn how_to_write(key: &str) -> String {
    let short = key.rsplit('.').next().unwrap_or(key);
    format!(
        "write `{short} = {{ env = \"VAR\" }}` or `{short} = {{ file = \"/run/secrets/NAME\" }}`"
    )
}

/// The source `value` (at `key`) names, read through `var` or from its
/// file. `literal_ok` also takes a plain string as the value itself (a
/// setting that is not a secret, such as Twilio's account SID).
///
/// # Errors
/// A message naming the file, line and key for a literal secret, a table
/// that names no single source, an environment variable that is unset or
/// blank, or a file that cannot be read or is empty. The value itself is
/// never quoted.
pub(super) fn read_source(
    key: &str,
    value: &toml::Spanned<toml::Value>,
    literal_ok: bool,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Setting, ConfigError> {
    match value.get_ref() {
        toml::Value::String(text) if literal_ok => Ok(Setting::Plain(text.clone())),
        _ => read_from(key, value, literal_ok, locator, var).map(Setting::Read),
    }
}

/// The credential `value` (at `key`) names, read through `var` or from its
/// file: [`read_source`] for a setting that is only ever a secret.
///
/// # Errors
/// As [`read_source`].
pub(super) fn read_secret(
    key: &str,
    value: &toml::Spanned<toml::Value>,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<FileSecret, ConfigError> {
    read_from(key, value, false, locator, var)
}

/// [`read_source`] for anything but a plain string it takes.
fn read_from(
    key: &str,
    value: &toml::Spanned<toml::Value>,
    literal_ok: bool,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<FileSecret, ConfigError> {
    let at = |message: String| locator.at(value.span(), format!("{key}: {message}"));
    let table = match value.get_ref() {
        toml::Value::String(_) => {
            return Err(at(format!(
                "a secret is never written in the configuration file: name where to read it \
                 from: {}",
                how_to_write(key)
            )));
        }
        toml::Value::Table(table) => table,
        other => {
            return Err(at(format!(
                "expected {}a table naming a source, found {}: {}",
                if literal_ok { "a string or " } else { "" },
                other.type_str(),
                how_to_write(key)
            )));
        }
    };
    let text = |k: &str| table.get(k).and_then(toml::Value::as_str);
    let source = match (table.len(), text("env"), text("file")) {
        (1, Some(name), None) if !name.trim().is_empty() => SecretSource::Env(name.to_owned()),
        (1, None, Some(path)) if !path.trim().is_empty() => SecretSource::File(path.into()),
        _ => {
            return Err(at(format!(
                "name exactly one source: {}",
                how_to_write(key)
            )));
        }
    };
    let value = match &source {
        SecretSource::Env(name) => var(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| at(format!("the environment variable {name} is not set")))?,
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| at(format!("cannot read the file {}: {e}", path.display())))?;
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.trim().is_empty() {
                return Err(at(format!("the file {} is empty", path.display())));
            }
            text
        }
    };
    Ok(FileSecret { source, value })
}

/// A setting that may be written in the file or read from a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    /// Written in the file.
    Plain(String),
    /// Read from the environment or a file (shown masked).
    Read(FileSecret),
}

impl Setting {
    /// The value.
    pub(crate) fn value(&self) -> &str {
        match self {
            Setting::Plain(text) => text,
            Setting::Read(secret) => secret.expose(),
        }
    }
}

impl fmt::Display for Setting {
    /// As `config show` prints it: a plain value quoted, a read one by its
    /// source, masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Plain(text) => write!(f, "{text:?}"),
            Setting::Read(secret) => write!(f, "{secret}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, literal_ok: bool) -> Result<Setting, String> {
        #[derive(serde::Deserialize)]
        struct One {
            key: toml::Spanned<toml::Value>,
        }
        let one: One = toml::from_str(text).unwrap();
        let locator = Locator {
            text,
            name: "f.toml",
        };
        let var = |name: &str| (name == "SET").then(|| "s3cret-from-env".to_owned());
        read_source("a.key", &one.key, literal_ok, &locator, &var).map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_and_never_print() {
        let from_env = read("key = { env = \"SET\" }", false).unwrap();
        assert_eq!(from_env.value(), "s3cret-from-env");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-from-file\n").unwrap();
        let text = format!("key = {{ file = {:?} }}", path.to_str().unwrap());
        let from_file = read(&text, false).unwrap();
        assert_eq!(from_file.value(), "s3cret-from-file");
        for setting in [&from_env, &from_file] {
            let shown = format!("{setting} {setting:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(
            from_env.to_string(),
            "{ env = \"SET\" }  # ***",
            "shown as the file writes it"
        );
    }

    #[test]
    fn a_literal_secret_or_a_missing_source_is_refused_with_its_line() {
        let literal = read("\n\nkey = \"tok-in-the-file\"", false).unwrap_err();
        assert!(
            literal.starts_with("f.toml:3:7: a.key: a secret is never written")
                && literal.contains("{ env = \"VAR\" }")
                && literal.contains("{ file = ")
                && !literal.contains("tok-in-the-file"),
            "{literal}"
        );
        let unset = read("key = { env = \"UNSET\" }", false).unwrap_err();
        assert!(
            unset.starts_with("f.toml:1:7: a.key: the environment variable UNSET is not set"),
            "{unset}"
        );
        let missing = read("key = { file = \"/nonexistent/neonhub\" }", false).unwrap_err();
        assert!(
            missing.starts_with("f.toml:1:7: a.key: cannot read the file /nonexistent/neonhub"),
            "{missing}"
        );
        let both = read("key = { env = \"SET\", file = \"/x\" }", false).unwrap_err();
        assert!(both.contains("name exactly one source"), "{both}");
        let number = read("key = 5", true).unwrap_err();
        assert!(number.contains("expected a string or a table"), "{number}");
        assert_eq!(
            read("key = \"AC123\"", true).unwrap(),
            Setting::Plain("AC123".to_owned())
        );
    }
}
