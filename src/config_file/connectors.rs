//! `[connectors.gmail|slack|twilio]` beyond their rate limits: the mode,
//! the timeout, the retry policy, the breaker, the base URLs and the
//! credentials (read from the environment or a file, never written in the
//! configuration file). The `NEONHUB_*` variables override the file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use neonhub_actors::{BreakerConfig, ConnectorMode, ConnectorOptions, RetryPolicy};
use serde::Deserialize;

use super::secret::{Setting, read_source};
use super::{ConfigError, Locator, MAX_RETRIES, is_http_url, parse_duration};

/// One `[connectors.NAME]` table of a built-in connector, as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnector {
    pub(super) rate: Option<toml::Spanned<String>>,
    pub(super) rate_per_key: Option<toml::Spanned<String>>,
    mode: Option<toml::Spanned<String>>,
    timeout: Option<toml::Spanned<String>>,
    retries: Option<toml::Spanned<u32>>,
    backoff: Option<toml::Spanned<String>>,
    breaker: Option<RawBreaker>,
    base_url: Option<toml::Spanned<toml::Value>>,
    token_url: Option<toml::Spanned<toml::Value>>,
    lookup_base_url: Option<toml::Spanned<toml::Value>>,
    token: Option<toml::Spanned<toml::Value>>,
    client_id: Option<toml::Spanned<toml::Value>>,
    client_secret: Option<toml::Spanned<toml::Value>>,
    refresh_token: Option<toml::Spanned<toml::Value>>,
    account_sid: Option<toml::Spanned<toml::Value>>,
    auth_token: Option<toml::Spanned<toml::Value>>,
    from: Option<toml::Spanned<toml::Value>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failure_threshold: Option<toml::Spanned<u32>>,
    open_for: Option<toml::Spanned<String>>,
}

/// What a setting of a connector is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A URL, written in the file or read from a source.
    Url,
    /// Not a secret: written in the file or read from a source.
    Plain,
    /// A credential: only read from a source.
    Secret,
}

/// The settings each connector takes besides the common ones: (connector,
/// key, the variable that overrides it, what it is).
const SETTINGS: [(&str, &str, &str, Kind); 13] = [
    ("gmail", "base_url", "NEONHUB_GMAIL_BASE_URL", Kind::Url),
    ("gmail", "token_url", "NEONHUB_GMAIL_TOKEN_URL", Kind::Url),
    ("gmail", "token", "NEONHUB_GMAIL_TOKEN", Kind::Secret),
    ("gmail", "client_id", "NEONHUB_GMAIL_CLIENT_ID", Kind::Plain),
    (
        "gmail",
        "client_secret",
        "NEONHUB_GMAIL_CLIENT_SECRET",
        Kind::Secret,
    ),
    (
        "gmail",
        "refresh_token",
        "NEONHUB_GMAIL_REFRESH_TOKEN",
        Kind::Secret,
    ),
    ("slack", "base_url", "NEONHUB_SLACK_BASE_URL", Kind::Url),
    ("slack", "token", "NEONHUB_SLACK_TOKEN", Kind::Secret),
    ("twilio", "base_url", "NEONHUB_TWILIO_BASE_URL", Kind::Url),
    (
        "twilio",
        "lookup_base_url",
        "NEONHUB_TWILIO_LOOKUP_BASE_URL",
        Kind::Url,
    ),
    (
        "twilio",
        "account_sid",
        "NEONHUB_TWILIO_ACCOUNT_SID",
        Kind::Plain,
    ),
    (
        "twilio",
        "auth_token",
        "NEONHUB_TWILIO_AUTH_TOKEN",
        Kind::Secret,
    ),
    ("twilio", "from", "NEONHUB_TWILIO_FROM", Kind::Plain),
];

/// One built-in connector's settings from the file (besides its rate
/// limits).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectorSection {
    /// `mode`: `mock` or `live` (`NEONHUB_<NAME>_MODE` and
    /// `NEONHUB_CONNECTORS` override it).
    pub mode: Option<ConnectorMode>,
    /// `timeout`: the longest one request may take.
    pub timeout: Option<Duration>,
    /// `retries` and `backoff`.
    pub retry: Option<RetryPolicy>,
    /// `breaker = { failure_threshold, open_for }`.
    pub breaker: Option<BreakerConfig>,
    /// Base URLs and credentials: (key, the variable that overrides it,
    /// the value).
    settings: Vec<(&'static str, &'static str, Setting)>,
}

impl ConnectorSection {
    /// How calls to this connector are guarded: the file's timeout, retry
    /// policy and breaker over the defaults.
    pub fn options(&self) -> ConnectorOptions {
        let defaults = ConnectorOptions::default();
        ConnectorOptions {
            timeout: self.timeout.unwrap_or(defaults.timeout),
            retry: self.retry.unwrap_or(defaults.retry),
            breaker: self.breaker.unwrap_or(defaults.breaker),
            ..defaults
        }
    }

    /// The value the file gives for the variable `var`
    /// (`NEONHUB_TWILIO_AUTH_TOKEN`, `NEONHUB_SLACK_MODE`, ...), if any.
    pub(super) fn var(&self, name: &str, var: &str) -> Option<String> {
        if var == mode_var(name) {
            return self.mode.map(|m| mode_name(m).to_owned());
        }
        self.settings
            .iter()
            .find(|(_, v, _)| *v == var)
            .map(|(_, _, setting)| setting.value().to_owned())
    }

    /// Prints the section's lines (after its rate limits), secrets masked.
    pub(super) fn show(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = self.options();
        match self.mode {
            Some(mode) => writeln!(f, "mode = \"{}\"", mode_name(mode))?,
            None => writeln!(
                f,
                "# mode: live with credentials, else mock ({} and NEONHUB_CONNECTORS win)",
                mode_var(name)
            )?,
        }
        writeln!(f, "timeout = \"{}ms\"", options.timeout.as_millis())?;
        writeln!(
            f,
            "retries = {}",
            options.retry.max_attempts.saturating_sub(1)
        )?;
        writeln!(
            f,
            "backoff = \"{}ms\"",
            options.retry.initial_backoff.as_millis()
        )?;
        writeln!(
            f,
            "breaker = {{ failure_threshold = {}, open_for = \"{}ms\" }}",
            options.breaker.failure_threshold,
            options.breaker.open_for.as_millis()
        )?;
        for (connector, key, var, _) in SETTINGS {
            if connector != name {
                continue;
            }
            match self.settings.iter().find(|(k, _, _)| *k == key) {
                Some((_, _, setting)) => writeln!(f, "{key} = {setting}")?,
                None => writeln!(f, "# {key}: {var}")?,
            }
        }
        Ok(())
    }
}

fn mode_name(mode: ConnectorMode) -> &'static str {
    match mode {
        ConnectorMode::Mock => "mock",
        ConnectorMode::Live => "live",
    }
}

/// `NEONHUB_GMAIL_MODE`, ...
fn mode_var(name: &str) -> String {
    format!("NEONHUB_{}_MODE", name.to_ascii_uppercase())
}

/// Checks the `[connectors.NAME]` tables of the built-in connectors
/// (besides their rate limits, which the caller reads).
///
/// # Errors
/// A message naming the file, line and key for a bad mode, duration,
/// count or URL, a key the connector does not take, a secret written in
/// the file, or a source that cannot be read.
pub(super) fn parse_connectors(
    raw: [(&'static str, Option<&RawConnector>); 3],
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<&'static str, ConnectorSection>, ConfigError> {
    let mut sections = BTreeMap::new();
    for (name, raw) in raw {
        if let Some(raw) = raw {
            sections.insert(name, parse_connector(name, raw, locator, var)?);
        }
    }
    Ok(sections)
}

fn parse_connector(
    name: &'static str,
    raw: &RawConnector,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectorSection, ConfigError> {
    let key = |k: &str| format!("connectors.{name}.{k}");
    let duration = |k: &str, text: &toml::Spanned<String>| {
        parse_duration(text.get_ref())
            .map_err(|e| locator.at(text.span(), format!("{}: {e}", key(k))))
    };
    let mode = raw
        .mode
        .as_ref()
        .map(|m| match m.get_ref().trim() {
            "mock" => Ok(ConnectorMode::Mock),
            "live" => Ok(ConnectorMode::Live),
            other => Err(locator.at(
                m.span(),
                format!(
                    "{}: {other:?} is not a mode: write \"mock\" or \"live\"",
                    key("mode")
                ),
            )),
        })
        .transpose()?;
    let timeout = raw
        .timeout
        .as_ref()
        .map(|t| duration("timeout", t))
        .transpose()?;
    let default_retry = ConnectorOptions::default().retry;
    let backoff = raw
        .backoff
        .as_ref()
        .map(|b| duration("backoff", b))
        .transpose()?;
    let attempts = match &raw.retries {
        Some(retries) if *retries.get_ref() > MAX_RETRIES => {
            return Err(locator.at(
                retries.span(),
                format!(
                    "{}: {} is over the most, {MAX_RETRIES}",
                    key("retries"),
                    retries.get_ref()
                ),
            ));
        }
        Some(retries) => Some(retries.get_ref() + 1),
        None => None,
    };
    let retry = (attempts.is_some() || backoff.is_some()).then(|| {
        RetryPolicy::attempts(
            attempts.unwrap_or(default_retry.max_attempts),
            backoff.unwrap_or(default_retry.initial_backoff),
        )
    });
    let breaker = match &raw.breaker {
        None => None,
        Some(b) => {
            let mut config = BreakerConfig::default();
            if let Some(threshold) = &b.failure_threshold {
                if *threshold.get_ref() == 0 {
                    return Err(locator.at(
                        threshold.span(),
                        format!(
                            "{}: 0 would open it before any call: give at least 1",
                            key("breaker.failure_threshold")
                        ),
                    ));
                }
                config.failure_threshold = *threshold.get_ref();
            }
            if let Some(open_for) = &b.open_for {
                config.open_for = duration("breaker.open_for", open_for)?;
            }
            Some(config)
        }
    };
    let given = [
        ("base_url", &raw.base_url),
        ("token_url", &raw.token_url),
        ("lookup_base_url", &raw.lookup_base_url),
        ("token", &raw.token),
        ("client_id", &raw.client_id),
        ("client_secret", &raw.client_secret),
        ("refresh_token", &raw.refresh_token),
        ("account_sid", &raw.account_sid),
        ("auth_token", &raw.auth_token),
        ("from", &raw.from),
    ];
    let mut settings = Vec::new();
    for (k, value) in given {
        let Some(value) = value else {
            continue;
        };
        let Some(&(_, static_key, env, kind)) =
            SETTINGS.iter().find(|(c, s, _, _)| *c == name && *s == k)
        else {
            let takes: Vec<&str> = SETTINGS
                .iter()
                .filter(|(c, ..)| *c == name)
                .map(|(_, s, ..)| *s)
                .collect();
            return Err(locator.at(
                value.span(),
                format!(
                    "{}: {name} has no setting {k:?} (it takes {})",
                    key(k),
                    takes.join(", ")
                ),
            ));
        };
        let setting = read_source(&key(k), value, kind != Kind::Secret, locator, var)?;
        if kind == Kind::Url && !is_http_url(setting.value().trim_end_matches('/')) {
            return Err(locator.at(
                value.span(),
                format!("{}: not an http:// or https:// URL", key(k)),
            ));
        }
        settings.push((static_key, env, setting));
    }
    Ok(ConnectorSection {
        mode,
        timeout,
        retry,
        breaker,
        settings,
    })
}
