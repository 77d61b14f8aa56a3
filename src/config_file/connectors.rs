//! `[connectors.gmail|slack|twilio|llm]` beyond their rate limits: the
//! mode, the timeout, the retry policy, the breaker, the base URLs and the
//! credentials (read from the environment or a file, never written in the
//! configuration file); the language model's provider, model, key, prices
//! and token budget. The `NEONHUB_*` variables override the file.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use neonhub_actors::{
    BreakerConfig, ConnectorMode, ConnectorOptions, ConnectorsConfig, LlmPrice, LlmProvider,
    RetryPolicy, Secret,
};
use serde::Deserialize;

use super::secret::{FileSecret, Setting, read_secret, read_source};
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
        if kind == Kind::Url {
            check_url(&key(k), setting.value(), false, value.span(), locator)?;
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

/// `[connectors.llm]`, as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLlm {
    provider: Option<toml::Spanned<String>>,
    base_url: Option<toml::Spanned<String>>,
    model: Option<toml::Spanned<String>>,
    api_key: Option<toml::Spanned<toml::Value>>,
    /// No longer read: refused, saying what to write instead.
    api_key_env: Option<toml::Spanned<toml::Value>>,
    #[serde(default)]
    prices: BTreeMap<String, toml::Spanned<RawPrice>>,
    pub(super) rate: Option<toml::Spanned<String>>,
    pub(super) rate_per_key: Option<toml::Spanned<String>>,
    tokens_per_minute: Option<toml::Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: f64,
    output: f64,
}

/// `[connectors.llm]`: the language-model connector. Each key gives way to
/// its `NEONHUB_LLM_*` variable when that is set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlmSection {
    /// `provider`: `openai` or `anthropic`.
    pub provider: Option<LlmProvider>,
    /// `base_url`: the API's base URL.
    pub base_url: Option<String>,
    /// `model`: the model of calls that name none.
    pub model: Option<String>,
    /// `api_key = { env = "VAR" }` or `{ file = "PATH" }`: the API key,
    /// read when the file is read (its `Debug` shows the source only).
    api_key: Option<FileSecret>,
    /// `prices`: US dollars per million input and output tokens, by model.
    pub prices: BTreeMap<String, LlmPrice>,
    /// `tokens_per_minute`: the token budget.
    pub tokens_per_minute: Option<NonZeroU32>,
}

impl LlmSection {
    /// `connectors` (read from the `NEONHUB_*` variables through `var`)
    /// with this section filling in what the variables leave unset; the
    /// file's API key is taken only when `NEONHUB_LLM_API_KEY` gives none.
    pub fn apply(
        &self,
        mut connectors: ConnectorsConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> ConnectorsConfig {
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let llm = &mut connectors.llm;
        if let (false, Some(provider)) = (set("NEONHUB_LLM_PROVIDER"), self.provider) {
            llm.provider = provider;
        }
        if llm.base_url.is_none() {
            llm.base_url.clone_from(&self.base_url);
        }
        if llm.model.is_none() {
            llm.model.clone_from(&self.model);
        }
        if llm.tokens_per_minute.is_none() {
            llm.tokens_per_minute = self.tokens_per_minute;
        }
        for (model, price) in &self.prices {
            llm.prices.entry(model.clone()).or_insert(*price);
        }
        if llm.api_key.is_none() {
            llm.api_key = self.api_key.as_ref().map(|key| Secret::new(key.expose()));
        }
        connectors
    }

    /// Prints the section's own lines (before its rate limits), the key
    /// as its source and `***`.
    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            Some(p) => writeln!(f, "provider = \"{}\"", p.as_str())?,
            None => writeln!(f, "# provider: \"openai\"")?,
        }
        match &self.base_url {
            Some(url) => writeln!(f, "base_url = {url:?}")?,
            None => writeln!(f, "# base_url: the provider's own")?,
        }
        match &self.model {
            Some(model) => writeln!(f, "model = {model:?}")?,
            None => writeln!(f, "# model: the provider's default")?,
        }
        match &self.api_key {
            Some(key) => writeln!(f, "api_key = {key}")?,
            None => writeln!(f, "# api_key: none (NEONHUB_LLM_API_KEY, else the mock)")?,
        }
        match self.tokens_per_minute {
            Some(n) => writeln!(f, "tokens_per_minute = {n}")?,
            None => writeln!(f, "# tokens_per_minute: no limit")?,
        }
        if self.prices.is_empty() {
            writeln!(f, "# prices: the built-in table")?;
        } else {
            let prices: Vec<String> = self
                .prices
                .iter()
                .map(|(m, p)| format!("{m:?} = {{ input = {}, output = {} }}", p.input, p.output))
                .collect();
            writeln!(f, "prices = {{ {} }}", prices.join(", "))?;
        }
        Ok(())
    }
}

/// Checks `[connectors.llm]` (besides its rate limits, which the caller
/// reads) and reads the API key it names.
///
/// # Errors
/// A message naming the file, line and key for a bad provider, URL, model,
/// price or token budget, the former `api_key_env`, a key written in the
/// file, or a source that cannot be read.
pub(super) fn parse_llm(
    raw: &RawLlm,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<LlmSection, ConfigError> {
    let key = |k: &str| format!("connectors.llm.{k}");
    let provider = raw
        .provider
        .as_ref()
        .map(|p| {
            p.get_ref().parse::<LlmProvider>().map_err(|_| {
                locator.at(
                    p.span(),
                    format!(
                        "{}: {:?} is not a provider: write \"openai\" (any OpenAI-compatible \
                         server) or \"anthropic\"",
                        key("provider"),
                        p.get_ref()
                    ),
                )
            })
        })
        .transpose()?;
    let base_url = raw
        .base_url
        .as_ref()
        .map(|u| {
            check_url(&key("base_url"), u.get_ref(), true, u.span(), locator)
                .map(|()| u.get_ref().trim_end_matches('/').to_owned())
        })
        .transpose()?;
    let model = raw
        .model
        .as_ref()
        .map(|m| {
            let model = m.get_ref().trim().to_owned();
            if model.is_empty() {
                Err(locator.at(m.span(), format!("{}: give a model name", key("model"))))
            } else {
                Ok(model)
            }
        })
        .transpose()?;
    if let Some(old) = &raw.api_key_env {
        // The variable's name, when it is one (never quote what may be the
        // key itself).
        let name = old
            .get_ref()
            .as_str()
            .filter(|name| is_variable_name(name))
            .unwrap_or("VAR");
        return Err(locator.at(
            old.span(),
            format!(
                "{}: no longer read: write `api_key = {{ env = {name:?} }}` instead (or \
                 `api_key = {{ file = \"/run/secrets/NAME\" }}`), as for every credential",
                key("api_key_env")
            ),
        ));
    }
    let api_key = raw
        .api_key
        .as_ref()
        .map(|k| read_secret(&key("api_key"), k, locator, var))
        .transpose()?;
    let mut prices = BTreeMap::new();
    for (model, price) in &raw.prices {
        let fine = |n: f64| n.is_finite() && n >= 0.0;
        let (span, price) = (price.span(), price.get_ref());
        if !fine(price.input) || !fine(price.output) {
            return Err(locator.at(
                span,
                format!(
                    "{}: the prices of {model:?} must be dollars per million tokens, 0 or more",
                    key("prices")
                ),
            ));
        }
        prices.insert(
            model.clone(),
            LlmPrice {
                input: price.input,
                output: price.output,
            },
        );
    }
    let tokens_per_minute = raw
        .tokens_per_minute
        .as_ref()
        .map(|t| {
            NonZeroU32::new(*t.get_ref()).ok_or_else(|| {
                locator.at(
                    t.span(),
                    format!(
                        "{}: 0 would refuse every call: give at least 1, or leave it out for \
                         no limit",
                        key("tokens_per_minute")
                    ),
                )
            })
        })
        .transpose()?;
    Ok(LlmSection {
        provider,
        base_url,
        model,
        api_key,
        prices,
        tokens_per_minute,
    })
}

/// Whether `text` could name an environment variable (`OPENAI_API_KEY`).
fn is_variable_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses `url` (at `span`, for `key`) unless it is an `http://` or
/// `https://` URL with a host, a trailing `/` aside; `quote`: name it in
/// the message (it was written in the file, not read from a source).
fn check_url(
    key: &str,
    url: &str,
    quote: bool,
    span: std::ops::Range<usize>,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    if is_http_url(url.trim_end_matches('/')) {
        return Ok(());
    }
    let what = if quote {
        format!("{url:?} is not")
    } else {
        "not".to_owned()
    };
    Err(locator.at(span, format!("{key}: {what} an http:// or https:// URL")))
}
