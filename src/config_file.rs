//! The configuration file (`serve --config neonhub.toml`, or
//! `NEONHUB_CONFIG`): the server's address, and the agents, built-in ones'
//! settings and agents served over HTTP. Everything has a default, so no
//! file is needed; flags and environment variables override the file.
//! Unknown keys and bad values are refused with the file, line and key.
//! `neonhub.example.toml` at the top of the repository shows every key.
//! `[store]` is read in `store.rs`, the connectors' settings besides their
//! rate limits (`[connectors.llm]`'s too) in `connectors.rs`, credentials'
//! sources in `secret.rs`.

mod connectors;
mod secret;
mod store;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use neonhub_actors::{
    AgentOptions, ConnectorLimits, ConnectorOptions, ConnectorsConfig, Limit, RateLimitsConfig,
    RetryPolicy,
};
use serde::Deserialize;

pub use connectors::{ConnectorSection, LlmSection};
pub use store::{DEFAULT_DATA_DIR, StoreSection};

/// The built-in agents, whose settings the file may give but whose `url`
/// and `intents` are their own.
pub const BUILTIN_AGENTS: [&str; 5] = ["echo", "content", "email", "sms", "slack"];

/// The most attempts a file may ask for.
const MAX_RETRIES: u32 = 100;

/// A configuration file, read and checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigFile {
    /// Where it was read from (`None`: no file, every default).
    pub path: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerSection,
    /// `[[agents]]`, in file order.
    pub agents: Vec<AgentConfig>,
    /// `[connectors.gmail|slack|twilio]` `rate` and `rate_per_key`, and
    /// `[connectors] max_waiting` (the flags' defaults where not given).
    pub rate_limits: RateLimitsConfig,
    /// The limits as the file writes them, for `config show`:
    /// (connector, key, text).
    limits_given: Vec<(String, &'static str, String)>,
    /// `[store]`.
    pub store: StoreSection,
    /// `[connectors.gmail|slack|twilio]` besides their rate limits: mode,
    /// timeout, retries, breaker, base URLs, credentials.
    pub connectors: BTreeMap<&'static str, ConnectorSection>,
    /// `[connectors.llm]` (its `rate` and `rate_per_key` are in
    /// [`Self::rate_limits`]).
    pub llm: LlmSection,
}

/// `[server]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSection {
    /// `listen`: the address to listen on (`--listen` overrides it).
    pub listen: Option<SocketAddr>,
    /// `public_url`: where agents served over HTTP reach this neonhub for
    /// their steps (default `http://<the address it listens on>`).
    pub public_url: Option<String>,
}

/// One `[[agents]]` entry: an agent served over HTTP (with `url`), or the
/// settings of a built-in agent (its name, no `url`).
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// `name`: unique.
    pub name: String,
    /// `intents` (HTTP agents only).
    pub intents: Vec<String>,
    /// `url` (HTTP agents only).
    pub url: Option<String>,
    /// `timeout` and `retries`/`backoff`.
    pub options: AgentOptions,
}

/// Why a file was refused: what to fix, and where.
#[derive(Debug)]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Names places in the text being read, for messages: `FILE:LINE:COL: ...`.
pub(crate) struct Locator<'a> {
    text: &'a str,
    name: &'a str,
}

impl Locator<'_> {
    /// `message`, at the start of `span`.
    pub(crate) fn at(&self, span: std::ops::Range<usize>, message: String) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError {
            message: format!("{}:{line}:{col}: {message}", self.name),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    agents: Vec<toml::Spanned<RawAgent>>,
    #[serde(default)]
    connectors: RawConnectors,
    #[serde(default)]
    store: store::RawStore,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnectors {
    gmail: Option<connectors::RawConnector>,
    slack: Option<connectors::RawConnector>,
    twilio: Option<connectors::RawConnector>,
    llm: Option<connectors::RawLlm>,
    max_waiting: Option<toml::Spanned<u32>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    rate: Option<toml::Spanned<String>>,
    rate_per_key: Option<toml::Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<toml::Spanned<String>>,
    public_url: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: toml::Spanned<String>,
    #[serde(default)]
    intents: Option<toml::Spanned<Vec<String>>>,
    url: Option<toml::Spanned<String>>,
    timeout: Option<toml::Spanned<String>>,
    retries: Option<toml::Spanned<u32>>,
    backoff: Option<toml::Spanned<String>>,
    max_concurrent: Option<toml::Spanned<u32>>,
}

/// A duration such as `250ms`, `30s`, `5m` or `1h`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration: write e.g. \"250ms\", \"30s\", \"5m\"")
    })?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{text:?} has no unit: write e.g. \"250ms\", \"30s\", \"5m\" or \"1h\""
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("{text:?} is zero: give a positive duration"));
    }
    Ok(duration)
}

/// Whether `text` is an `http://` or `https://` URL with a host.
fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Line and column (1-based) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

impl ConfigFile {
    /// No file: every default.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    /// A message naming the file, the line and the key, for a file that
    /// cannot be read, is not TOML, has an unknown key or a bad value.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            message: format!("cannot read the configuration file {}: {e}", path.display()),
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// Checks `text`, named `name` in messages; credentials it names in
    /// the environment are read from the process's.
    ///
    /// # Errors
    /// As [`Self::read`].
    pub fn parse(text: &str, name: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, name, &|var| std::env::var(var).ok())
    }

    /// [`Self::parse`], looking environment variables up through `var`.
    ///
    /// # Errors
    /// As [`Self::read`], and for a credential written in the file, or
    /// whose variable is unset or whose file cannot be read.
    pub fn parse_with(
        text: &str,
        name: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            ConfigError {
                message: format!("{name}:{line}:{col}: {message}"),
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            match e.span() {
                Some(span) => at(span, message),
                None => ConfigError {
                    message: format!("{name}: {message}"),
                },
            }
        })?;
        let listen = raw
            .server
            .listen
            .map(|l| {
                l.get_ref().parse::<SocketAddr>().map_err(|e| {
                    at(
                        l.span(),
                        format!(
                            "server.listen: {:?} is not an address ({e}): write e.g. \
                             \"127.0.0.1:4000\"",
                            l.get_ref()
                        ),
                    )
                })
            })
            .transpose()?;
        let public_url = raw
            .server
            .public_url
            .map(|u| {
                let url = u.get_ref().trim_end_matches('/').to_owned();
                if is_http_url(&url) {
                    Ok(url)
                } else {
                    Err(at(
                        u.span(),
                        format!(
                            "server.public_url: {:?} is not an http:// or https:// URL",
                            u.get_ref()
                        ),
                    ))
                }
            })
            .transpose()?;
        let mut names = HashSet::new();
        let mut intents = HashSet::new();
        let mut agents = Vec::new();
        for entry in raw.agents {
            let span = entry.span();
            let agent = entry.into_inner();
            let name = agent.name.get_ref().trim().to_owned();
            let key = |k: &str| format!("agents[{name}].{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(at(
                    agent.name.span(),
                    format!(
                        "agents.name: {:?} is not a name: use letters, digits and -_.",
                        agent.name.get_ref()
                    ),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(at(
                    agent.name.span(),
                    format!("agents.name: {name:?} is declared twice"),
                ));
            }
            let builtin = BUILTIN_AGENTS.contains(&name.as_str());
            let url = match (&agent.url, builtin) {
                (Some(url), true) => {
                    return Err(at(
                        url.span(),
                        format!(
                            "{}: {name:?} is a built-in agent; give another name to an agent \
                             served over HTTP",
                            key("url")
                        ),
                    ));
                }
                (None, false) => {
                    return Err(at(
                        span,
                        format!(
                            "agents: {name:?} is not a built-in agent ({}), so it needs a \
                             `url` (an agent served over HTTP)",
                            BUILTIN_AGENTS.join(", ")
                        ),
                    ));
                }
                (Some(url), false) => {
                    if !is_http_url(url.get_ref()) {
                        return Err(at(
                            url.span(),
                            format!(
                                "{}: {:?} is not an http:// or https:// URL",
                                key("url"),
                                url.get_ref()
                            ),
                        ));
                    }
                    Some(url.get_ref().clone())
                }
                (None, true) => None,
            };
            let agent_intents = match (&agent.intents, builtin) {
                (Some(list), true) => {
                    return Err(at(
                        list.span(),
                        format!(
                            "{}: the built-in agent {name:?} has its own intents",
                            key("intents")
                        ),
                    ));
                }
                (Some(list), false) => {
                    for intent in list.get_ref() {
                        if intent.trim().is_empty() || !intents.insert(intent.clone()) {
                            return Err(at(
                                list.span(),
                                format!(
                                    "{}: {intent:?} is empty or claimed by another agent",
                                    key("intents")
                                ),
                            ));
                        }
                    }
                    list.get_ref().clone()
                }
                (None, _) => Vec::new(),
            };
            let mut options = AgentOptions::default();
            if let Some(timeout) = &agent.timeout {
                options.timeout = parse_duration(timeout.get_ref())
                    .map_err(|e| at(timeout.span(), format!("{}: {e}", key("timeout"))))?;
            }
            let backoff = match &agent.backoff {
                Some(b) => parse_duration(b.get_ref())
                    .map_err(|e| at(b.span(), format!("{}: {e}", key("backoff"))))?,
                None => Duration::from_millis(200),
            };
            if let Some(retries) = &agent.retries {
                let n = *retries.get_ref();
                if n > MAX_RETRIES {
                    return Err(at(
                        retries.span(),
                        format!("{}: {n} is over the most, {MAX_RETRIES}", key("retries")),
                    ));
                }
                options.retry = RetryPolicy::attempts(n + 1, backoff);
            } else if agent.backoff.is_some() {
                options.retry = RetryPolicy::attempts(1, backoff);
            }
            if let Some(max) = &agent.max_concurrent {
                options.max_concurrent = Some(
                    std::num::NonZeroUsize::new(*max.get_ref() as usize).ok_or_else(|| {
                        at(
                            max.span(),
                            format!(
                                "{}: 0 would never run it: give at least 1, or leave it out \
                                 for no limit",
                                key("max_concurrent")
                            ),
                        )
                    })?,
                );
            }
            agents.push(AgentConfig {
                name,
                intents: agent_intents,
                url,
                options,
            });
        }
        let locator = Locator { text, name };
        let store = store::parse_store(raw.store, &locator, var)?;
        let connectors = raw.connectors;
        let connector_sections = connectors::parse_connectors(
            [
                ("gmail", connectors.gmail.as_ref()),
                ("slack", connectors.slack.as_ref()),
                ("twilio", connectors.twilio.as_ref()),
            ],
            &locator,
            var,
        )?;
        let llm = connectors
            .llm
            .as_ref()
            .map(|raw| connectors::parse_llm(raw, &locator, var))
            .transpose()?
            .unwrap_or_default();
        let mut rate_limits = RateLimitsConfig::default();
        let mut limits_given = Vec::new();
        let limits_of = |c: Option<connectors::RawConnector>| {
            c.map(|c| RawLimits {
                rate: c.rate,
                rate_per_key: c.rate_per_key,
            })
        };
        let llm_limits = connectors.llm.map(|c| RawLimits {
            rate: c.rate,
            rate_per_key: c.rate_per_key,
        });
        for (name, raw_limits, limits) in [
            ("gmail", limits_of(connectors.gmail), &mut rate_limits.gmail),
            ("slack", limits_of(connectors.slack), &mut rate_limits.slack),
            (
                "twilio",
                limits_of(connectors.twilio),
                &mut rate_limits.twilio,
            ),
            ("llm", llm_limits, &mut rate_limits.llm),
        ] {
            let Some(raw_limits) = raw_limits else {
                continue;
            };
            for (key, given, limit) in [
                ("rate", raw_limits.rate, &mut limits.connector),
                ("rate_per_key", raw_limits.rate_per_key, &mut limits.per_key),
            ] {
                if let Some(text) = given {
                    *limit = text.get_ref().parse::<Limit>().map_err(|e| {
                        at(
                            text.span(),
                            format!(
                                "connectors.{name}.{key}: {e}; write \"default\", \"off\" \
                                 or a rate such as \"10/s\", \"100/min\", \"1000/h\""
                            ),
                        )
                    })?;
                    limits_given.push((name.to_owned(), key, text.get_ref().clone()));
                }
            }
        }
        if let Some(max) = connectors.max_waiting {
            if *max.get_ref() == 0 {
                return Err(at(
                    max.span(),
                    "connectors.max_waiting: 0 would refuse every call over a limit: give at \
                     least 1"
                        .to_owned(),
                ));
            }
            rate_limits.max_waiting = *max.get_ref() as usize;
        }
        Ok(ConfigFile {
            path: None,
            server: ServerSection { listen, public_url },
            agents,
            rate_limits,
            limits_given,
            store,
            connectors: connector_sections,
            llm,
        })
    }

    /// How many connectors the file sets something for: the
    /// `[connectors.gmail|slack|twilio]` sections, and `[connectors.llm]`
    /// when it sets any key (its rate limits included).
    pub fn connectors_set(&self) -> usize {
        let llm = self.llm != LlmSection::default()
            || self.limits_given.iter().any(|(name, _, _)| name == "llm");
        self.connectors.len() + usize::from(llm)
    }

    /// The built-in connectors' configuration in force: each `NEONHUB_*`
    /// variable `env` gives (see `connectors_from_env`) over the file's
    /// `[connectors.NAME]` settings.
    ///
    /// # Errors
    /// As [`ConnectorsConfig::from_vars`].
    pub fn connectors_under(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> neonhub_actors::Result<ConnectorsConfig> {
        ConnectorsConfig::from_vars(|var| {
            env(var).filter(|v| !v.trim().is_empty()).or_else(|| {
                self.connectors
                    .iter()
                    .find_map(|(name, section)| section.var(name, var))
            })
        })
    }

    /// How calls to connector `name` are guarded: the file's timeout,
    /// retries and breaker over the defaults (the rate limits come from
    /// [`Self::rate_limits_under`]).
    pub fn connector_options(&self, name: &str) -> ConnectorOptions {
        self.connectors
            .get(name)
            .map_or_else(ConnectorOptions::default, ConnectorSection::options)
    }

    /// The rate limits in force: each flag (or its variable) given wins
    /// over the file; a flag left at `default` takes the file's value.
    /// `max_waiting` likewise, when the flag is at its default.
    pub fn rate_limits_under(&self, flags: RateLimitsConfig) -> RateLimitsConfig {
        let pick = |flag: Limit, file: Limit| if flag == Limit::Default { file } else { flag };
        let merge = |flag: ConnectorLimits, file: ConnectorLimits| ConnectorLimits {
            connector: pick(flag.connector, file.connector),
            per_key: pick(flag.per_key, file.per_key),
        };
        RateLimitsConfig {
            gmail: merge(flags.gmail, self.rate_limits.gmail),
            slack: merge(flags.slack, self.rate_limits.slack),
            twilio: merge(flags.twilio, self.rate_limits.twilio),
            llm: merge(flags.llm, self.rate_limits.llm),
            max_waiting: if flags.max_waiting == RateLimitsConfig::default().max_waiting {
                self.rate_limits.max_waiting
            } else {
                flags.max_waiting
            },
        }
    }

    /// The settings of agent `name` (built-in or not): the file's, or the
    /// defaults.
    pub fn agent_options(&self, name: &str) -> AgentOptions {
        self.agents
            .iter()
            .find(|a| a.name == name)
            .map_or_else(AgentOptions::default, |a| a.options)
    }

    /// The agents served over HTTP.
    pub fn http_agents(&self) -> impl Iterator<Item = &AgentConfig> {
        self.agents.iter().filter(|a| a.url.is_some())
    }
}

impl fmt::Display for ConfigFile {
    /// The effective configuration, as TOML (no secret is in it: the file
    /// holds none, and credentials read from a source show as the source
    /// and `***`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => writeln!(f, "# from {}", path.display())?,
            None => writeln!(f, "# no configuration file: the defaults")?,
        }
        writeln!(f, "[server]")?;
        match self.server.listen {
            Some(listen) => writeln!(f, "listen = \"{listen}\"")?,
            None => writeln!(f, "# listen: --listen, default 127.0.0.1:4000")?,
        }
        match &self.server.public_url {
            Some(url) => writeln!(f, "public_url = \"{url}\"")?,
            None => writeln!(f, "# public_url: http://<the address it listens on>")?,
        }
        self.store.show(f)?;
        let show = |a: &AgentConfig, f: &mut fmt::Formatter<'_>| -> fmt::Result {
            writeln!(f, "\n[[agents]]\nname = \"{}\"", a.name)?;
            if let Some(url) = &a.url {
                writeln!(f, "url = \"{url}\"")?;
                let intents: Vec<String> = a.intents.iter().map(|i| format!("{i:?}")).collect();
                writeln!(f, "intents = [{}]", intents.join(", "))?;
            }
            writeln!(f, "timeout = \"{}ms\"", a.options.timeout.as_millis())?;
            writeln!(
                f,
                "retries = {}",
                a.options.retry.max_attempts.saturating_sub(1)
            )?;
            writeln!(
                f,
                "backoff = \"{}ms\"",
                a.options.retry.initial_backoff.as_millis()
            )?;
            match a.options.max_concurrent {
                Some(max) => writeln!(f, "max_concurrent = {max}"),
                None => writeln!(f, "# max_concurrent: no limit"),
            }
        };
        for name in BUILTIN_AGENTS {
            let agent = self
                .agents
                .iter()
                .find(|a| a.name == name)
                .cloned()
                .unwrap_or_else(|| AgentConfig {
                    name: name.to_owned(),
                    intents: Vec::new(),
                    url: None,
                    options: AgentOptions::default(),
                });
            show(&agent, f)?;
        }
        for agent in self.http_agents() {
            show(agent, f)?;
        }
        writeln!(f, "\n[connectors]")?;
        writeln!(f, "max_waiting = {}", self.rate_limits.max_waiting)?;
        for name in ["gmail", "slack", "twilio", "llm"] {
            writeln!(f, "\n[connectors.{name}]")?;
            if name == "llm" {
                self.llm.show(f)?;
            }
            for key in ["rate", "rate_per_key"] {
                match self
                    .limits_given
                    .iter()
                    .find(|(n, k, _)| n == name && *k == key)
                {
                    Some((_, _, text)) => writeln!(f, "{key} = {text:?}")?,
                    None => writeln!(
                        f,
                        "# {key}: \"default\" (the vendor's published limit when live, none \
                         for a mock)"
                    )?,
                }
            }
            // The built-in connectors' other settings (the model's are above).
            if name != "llm" {
                self.connectors
                    .get(name)
                    .cloned()
                    .unwrap_or_default()
                    .show(name, f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use neonhub_actors::{LlmPrice, LlmProvider, Secret};

    use super::*;

    fn refused(text: &str) -> String {
        ConfigFile::parse(text, "f.toml").unwrap_err().to_string()
    }

    /// The API key `[connectors.llm]` gives the connector under the
    /// variables `var` gives.
    fn llm_key(config: &ConfigFile, var: &dyn Fn(&str) -> Option<String>) -> Option<Secret> {
        let connectors = ConnectorsConfig::from_vars(var).unwrap();
        config.llm.apply(connectors, var).llm.api_key
    }

    #[test]
    fn no_file_is_every_default() {
        let config = ConfigFile::parse("", "f.toml").unwrap();
        assert_eq!(config.agents, vec![]);
        assert_eq!(config.agent_options("echo"), AgentOptions::default());
    }

    #[test]
    fn an_http_agent_and_a_builtin_setting() {
        let config = ConfigFile::parse(
            "[server]\nlisten = \"127.0.0.1:9\"\n\n[[agents]]\nname = \"summarize\"\n\
             intents = [\"text.summarize\"]\nurl = \"http://127.0.0.1:9000/run\"\n\
             timeout = \"30s\"\nretries = 3\nmax_concurrent = 4\n\n[[agents]]\nname = \"email\"\n\
             timeout = \"250ms\"\n",
            "f.toml",
        )
        .unwrap();
        assert_eq!(config.server.listen, Some("127.0.0.1:9".parse().unwrap()));
        let summarize = config.http_agents().next().unwrap();
        assert_eq!(summarize.intents, vec!["text.summarize"]);
        assert_eq!(summarize.options.timeout, Duration::from_secs(30));
        assert_eq!(summarize.options.retry.max_attempts, 4);
        assert_eq!(summarize.options.max_concurrent.map(|n| n.get()), Some(4));
        assert_eq!(
            config.agent_options("email").timeout,
            Duration::from_millis(250)
        );
        // What `config show` prints reads back the same.
        let shown = config.to_string();
        let again = ConfigFile::parse(&shown, "shown.toml").unwrap();
        assert_eq!(again.agents.len(), 6, "{shown}");
        assert_eq!(again.agent_options("summarize"), summarize.options);
        assert_eq!(again.agent_options("email"), config.agent_options("email"));
    }

    #[test]
    fn every_bad_file_names_its_line_and_key() {
        let cases: [(&str, &str); 13] = [
            (
                "[[agents]]\nname = \"echo\"\nmax_concurrent = 0\n",
                "f.toml:3:18: agents[echo].max_concurrent: 0 would never run it",
            ),
            (
                "[server]\nlisen = \"x\"\n",
                "f.toml:2:1: unknown field `lisen`",
            ),
            ("[sever]\n", "f.toml:1:2: unknown field `sever`"),
            (
                "[server]\nlisten = \"nope\"\n",
                "f.toml:2:10: server.listen: \"nope\"",
            ),
            (
                "[server]\nlisten = 4000\n",
                "f.toml:2:10: invalid type: integer `4000`",
            ),
            ("[server\n", "f.toml:1:8"),
            (
                "[[agents]]\nname = \"x\"\n",
                "f.toml:1:1: agents: \"x\" is not a built-in",
            ),
            (
                "[[agents]]\nname = \"x\"\nurl = \"ftp://h/\"\n",
                "f.toml:3:7: agents[x].url: \"ftp://h/\" is not an http",
            ),
            (
                "[[agents]]\nname = \"echo\"\nurl = \"http://h/\"\n",
                "f.toml:3:7: agents[echo].url: \"echo\" is a built-in agent",
            ),
            (
                "[[agents]]\nname = \"echo\"\ntimeout = \"30\"\n",
                "f.toml:3:11: agents[echo].timeout: \"30\" has no unit",
            ),
            (
                "[[agents]]\nname = \"echo\"\nretries = 1000\n",
                "f.toml:3:11: agents[echo].retries: 1000 is over the most",
            ),
            (
                "[[agents]]\nname = \"echo\"\n[[agents]]\nname = \"echo\"\n",
                "f.toml:4:8: agents.name: \"echo\" is declared twice",
            ),
            (
                "[[agents]]\nname = \"a\"\nurl = \"http://h/\"\nintents = [\"i\"]\n\
                 [[agents]]\nname = \"b\"\nurl = \"http://h/\"\nintents = [\"i\"]\n",
                "f.toml:8:11: agents[b].intents: \"i\" is empty or claimed",
            ),
        ];
        for (text, expected) in cases {
            let message = refused(text);
            assert!(
                message.starts_with(expected),
                "{text:?}\n  gave {message:?}\n  expected it to start with {expected:?}"
            );
        }
    }

    #[test]
    fn the_example_file_is_valid_and_says_what_it_shows() {
        let example = include_str!("../neonhub.example.toml");
        let config = ConfigFile::parse(example, "neonhub.example.toml").unwrap();
        assert_eq!(
            config.server.listen,
            Some("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(config.agent_options("email").retry.max_attempts, 3);
        assert_eq!(config.http_agents().count(), 1);
        assert_eq!(config.store.data_dir.as_deref(), Some(Path::new("./data")));
        assert_eq!(
            config.connector_options("twilio").breaker,
            neonhub_actors::BreakerConfig::default()
        );
        assert_eq!(config.llm.provider, Some(LlmProvider::OpenAi));
        assert_eq!(
            llm_key(&config, &|_| None),
            None,
            "serving the example needs no key"
        );
        let examples = include_str!("../examples/neonhub.toml");
        assert_eq!(
            ConfigFile::parse(examples, "examples/neonhub.toml")
                .unwrap()
                .http_agents()
                .count(),
            2
        );
    }

    #[test]
    fn rate_limits_from_the_file_give_way_to_flags() {
        let config = ConfigFile::parse(
            "[connectors]\nmax_waiting = 10\n[connectors.twilio]\nrate = \"50/s\"\n\
             rate_per_key = \"10/s\"\n[connectors.slack]\nrate_per_key = \"off\"\n",
            "f.toml",
        )
        .unwrap();
        let ten: Limit = "10/s".parse().unwrap();
        assert_eq!(config.rate_limits.twilio.per_key, ten);
        assert_eq!(config.rate_limits.slack.per_key, Limit::Off);
        assert_eq!(config.rate_limits.max_waiting, 10);
        // No flag given: the file's.
        let merged = config.rate_limits_under(RateLimitsConfig::default());
        assert_eq!(merged.twilio.per_key, ten);
        assert_eq!(merged.max_waiting, 10);
        assert_eq!(merged.gmail.connector, Limit::Default);
        // A flag given wins.
        let mut flags = RateLimitsConfig::default();
        flags.twilio.per_key = "2/s".parse().unwrap();
        let merged = config.rate_limits_under(flags);
        assert_eq!(merged.twilio.per_key, "2/s".parse::<Limit>().unwrap());
        assert_eq!(merged.twilio.connector, "50/s".parse::<Limit>().unwrap());
        // What `config show` prints reads back the same.
        let again = ConfigFile::parse(&config.to_string(), "shown.toml").unwrap();
        assert_eq!(again.rate_limits, config.rate_limits);
        // A bad rate names its line and key.
        let message = refused("[connectors.gmail]\nrate = \"fast\"\n");
        assert!(
            message.starts_with("f.toml:2:8: connectors.gmail.rate: "),
            "{message}"
        );
        let message = refused("[connectors.fax]\nrate = \"1/s\"\n");
        assert!(message.contains("unknown field `fax`"), "{message}");
    }

    #[test]
    fn every_bad_store_or_connector_key_names_its_line_and_key() {
        let cases: [(&str, &str); 21] = [
            (
                "[store]\nbackend = \"mysql\"\n",
                "f.toml:2:11: store.backend: \"mysql\" is not a backend",
            ),
            (
                "[store]\ndata_dirr = \"x\"\n",
                "f.toml:2:1: unknown field `data_dirr`",
            ),
            (
                "[store]\ndata_dir = 5\n",
                "f.toml:2:12: invalid type: integer `5`",
            ),
            (
                "[store]\nprojection = \"\"\n",
                "f.toml:2:14: store.projection: give a path",
            ),
            (
                "[store]\neventstore_url = \"esdb://admin:changeit@db:2113\"\n",
                "f.toml:2:18: store.eventstore_url: this connection string holds credentials",
            ),
            (
                "[connectors.twilio]\ntimeout = \"10\"\n",
                "f.toml:2:11: connectors.twilio.timeout: \"10\" has no unit",
            ),
            (
                "[connectors.twilio]\ntimout = \"10s\"\n",
                "f.toml:2:1: unknown field `timout`",
            ),
            (
                "[connectors.twilio]\nretries = \"2\"\n",
                "f.toml:2:11: invalid type: string \"2\"",
            ),
            (
                "[connectors.slack]\nmode = \"sometimes\"\n",
                "f.toml:2:8: connectors.slack.mode: \"sometimes\" is not a mode",
            ),
            (
                "[connectors.gmail]\nbreaker = { failure_threshold = 0 }\n",
                "f.toml:2:33: connectors.gmail.breaker.failure_threshold: 0 would open it",
            ),
            (
                "[connectors.gmail]\nbreaker = { open_for = \"soon\" }\n",
                "f.toml:2:24: connectors.gmail.breaker.open_for: \"soon\" is not a duration",
            ),
            (
                "[connectors.gmail.breaker]\nfailures = 3\n",
                "f.toml:2:1: unknown field `failures`",
            ),
            (
                "[connectors.twilio]\nauth_token = \"tok-written-here\"\n",
                "f.toml:2:14: connectors.twilio.auth_token: a secret is never written in the \
                 configuration file",
            ),
            (
                "[connectors.slack]\ntoken = { env = \"NEONHUB_TEST_SURELY_UNSET_VAR\" }\n",
                "f.toml:2:9: connectors.slack.token: the environment variable \
                 NEONHUB_TEST_SURELY_UNSET_VAR is not set",
            ),
            (
                "[connectors.slack]\naccount_sid = \"AC1\"\n",
                "f.toml:2:15: connectors.slack.account_sid: slack has no setting",
            ),
            (
                "[connectors.twilio]\nbase_url = \"ftp://x\"\n",
                "f.toml:2:12: connectors.twilio.base_url: not an http",
            ),
            (
                "[connectors.llm]\napi_key = \"sk-proj-written-here\"\n",
                "f.toml:2:11: connectors.llm.api_key: a secret is never written in the \
                 configuration file: name where to read it from: write \
                 `api_key = { env = \"VAR\" }` or `api_key = { file = \"/run/secrets/NAME\" }`",
            ),
            (
                "[connectors.llm]\napi_key = { env = \"NEONHUB_TEST_SURELY_UNSET_VAR\" }\n",
                "f.toml:2:11: connectors.llm.api_key: the environment variable \
                 NEONHUB_TEST_SURELY_UNSET_VAR is not set",
            ),
            (
                "[connectors.llm]\napi_key = { file = \"/nonexistent/neonhub-llm-key\" }\n",
                "f.toml:2:11: connectors.llm.api_key: cannot read the file \
                 /nonexistent/neonhub-llm-key",
            ),
            (
                "[connectors.llm]\nmodel = \"gpt-4o-mini\"\napi_key_env = \"OPENAI_API_KEY\"\n",
                "f.toml:3:15: connectors.llm.api_key_env: no longer read: write \
                 `api_key = { env = \"OPENAI_API_KEY\" }` instead",
            ),
            (
                "[connectors.llm]\napi_key_env = \"sk-proj-written-here\"\n",
                "f.toml:2:15: connectors.llm.api_key_env: no longer read: write \
                 `api_key = { env = \"VAR\" }` instead",
            ),
        ];
        for (text, expected) in cases {
            let message = refused(text);
            assert!(
                message.starts_with(expected),
                "{text:?}\n  gave {message:?}\n  expected it to start with {expected:?}"
            );
            for secret in ["changeit", "tok-written-here", "sk-proj-written-here"] {
                assert!(!message.contains(secret), "{message}");
            }
        }
    }

    #[test]
    fn store_and_connectors_from_the_file_give_way_to_flags_and_variables() {
        use neonhub_actors::{ConnectorMode, Secret};

        use crate::config::{StoreConfig, StoreKind};

        let text = "[store]\nbackend = \"eventstoredb\"\ndata_dir = \"/srv/neonhub\"\n\
             log_dir = \"/srv/log\"\nprojection = \"/srv/table.sqlite\"\n\
             eventstore_url = { env = \"ESDB\" }\n\n\
             [connectors.twilio]\nmode = \"live\"\ntimeout = \"3s\"\nretries = 4\n\
             backoff = \"50ms\"\nbreaker = { failure_threshold = 2, open_for = \"1m\" }\n\
             account_sid = \"AC1\"\nauth_token = { env = \"TW_TOKEN\" }\nfrom = \"+15550001111\"\n\
             base_url = \"http://127.0.0.1:9/twilio\"\n";
        let var = |name: &str| match name {
            "ESDB" => Some("esdb://admin:es-secret@db:2113".to_owned()),
            "TW_TOKEN" => Some("tw-secret".to_owned()),
            _ => None,
        };
        let config = ConfigFile::parse_with(text, "f.toml", &var).unwrap();

        // [store], under --data-dir, --store and --eventstore-url.
        let data = config.store.data_dir_under(None);
        assert_eq!(data.path(), Path::new("/srv/neonhub"));
        assert_eq!(data.log_dir(), Path::new("/srv/log"));
        assert_eq!(data.projection_path(), Path::new("/srv/table.sqlite"));
        let flagged = config.store.data_dir_under(Some("/flag".into()));
        assert_eq!(flagged.path(), Path::new("/flag"));
        assert_eq!(flagged.log_dir(), Path::new("/srv/log"));
        assert_eq!(
            ConfigFile::none().store.data_dir_under(None).log_dir(),
            Path::new("./data/log")
        );
        let store = config.store.store_under(None, None).unwrap();
        assert_eq!(store.kind(), StoreKind::EventStoreDb);
        assert!(!store.to_string().contains("es-secret"), "{store}");
        assert_eq!(
            config
                .store
                .store_under(Some(StoreKind::Embedded), None)
                .unwrap(),
            StoreConfig::Embedded
        );

        // Timeout, retries and breaker.
        let twilio = config.connector_options("twilio");
        assert_eq!(twilio.timeout, Duration::from_secs(3));
        assert_eq!(twilio.retry.max_attempts, 5);
        assert_eq!(twilio.retry.initial_backoff, Duration::from_millis(50));
        assert_eq!(twilio.breaker.failure_threshold, 2);
        assert_eq!(twilio.breaker.open_for, Duration::from_secs(60));
        assert_eq!(
            config.connector_options("gmail"),
            ConnectorOptions::default()
        );

        // Mode, URLs and credentials, under the NEONHUB_* variables.
        let connectors = config.connectors_under(|_| None).unwrap();
        assert_eq!(connectors.twilio_mode(), ConnectorMode::Live);
        assert_eq!(connectors.twilio.auth_token, Some(Secret::new("tw-secret")));
        assert_eq!(connectors.twilio.account_sid.as_deref(), Some("AC1"));
        assert_eq!(connectors.twilio.base_url, "http://127.0.0.1:9/twilio");
        assert_eq!(connectors.slack_mode(), ConnectorMode::Mock);
        let env = |name: &str| match name {
            "NEONHUB_TWILIO_AUTH_TOKEN" => Some("from-env".to_owned()),
            "NEONHUB_TWILIO_MODE" => Some("mock".to_owned()),
            _ => None,
        };
        let overridden = config.connectors_under(env).unwrap();
        assert_eq!(overridden.twilio.auth_token, Some(Secret::new("from-env")));
        assert_eq!(overridden.twilio_mode(), ConnectorMode::Mock);

        // `config show` masks what it read, and reads back the same.
        let shown = config.to_string();
        for secret in ["tw-secret", "es-secret"] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!format!("{config:?}").contains(secret));
        }
        assert!(
            shown.contains("auth_token = { env = \"TW_TOKEN\" }  # ***"),
            "{shown}"
        );
        assert!(
            shown.contains("eventstore_url = { env = \"ESDB\" }  # ***"),
            "{shown}"
        );
        let again = ConfigFile::parse_with(&shown, "shown.toml", &var).unwrap();
        assert_eq!(again.store, config.store);
        for name in ["gmail", "slack", "twilio"] {
            assert_eq!(
                again.connector_options(name),
                config.connector_options(name)
            );
        }
        assert_eq!(again.connectors_under(|_| None).unwrap(), connectors);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
    }

    #[test]
    fn the_llm_section_is_read_and_its_key_comes_from_the_environment() {
        let text = "[connectors.llm]\nprovider = \"anthropic\"\nbase_url = \"http://127.0.0.1:9/\"\n\
             model = \"claude-3-5-haiku-latest\"\napi_key = { env = \"MY_LLM_KEY\" }\n\
             rate = \"50/min\"\ntokens_per_minute = 40000\n\
             prices = { \"my-model\" = { input = 0.5, output = 1.5 } }\n";
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let env = vars(&[("MY_LLM_KEY", "sk-from-env")]);
        let config = ConfigFile::parse_with(text, "f.toml", &env).unwrap();
        assert_eq!(
            config.connectors_set(),
            1,
            "config check counts the llm section"
        );
        let only_its_rate = "[connectors.llm]\nrate = \"50/min\"\n";
        let rate_only = ConfigFile::parse_with(only_its_rate, "f.toml", &env).unwrap();
        assert_eq!(rate_only.connectors_set(), 1);
        assert_eq!(ConfigFile::none().connectors_set(), 0);
        assert_eq!(config.llm.provider, Some(LlmProvider::Anthropic));
        assert_eq!(config.llm.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(config.rate_limits.llm.connector, "50/min".parse().unwrap());
        let connectors = ConnectorsConfig::from_vars(env).unwrap();
        let applied = config.llm.apply(connectors, env);
        assert_eq!(applied.llm.provider, LlmProvider::Anthropic);
        assert_eq!(applied.llm.api_key, Some(Secret::new("sk-from-env")));
        assert_eq!(applied.llm.tokens_per_minute.map(|n| n.get()), Some(40000));
        assert_eq!(
            applied.llm.prices["my-model"],
            LlmPrice {
                input: 0.5,
                output: 1.5
            }
        );
        // A variable set wins over the file.
        let env = vars(&[("MY_LLM_KEY", "k"), ("NEONHUB_LLM_PROVIDER", "openai")]);
        let connectors = ConnectorsConfig::from_vars(env).unwrap();
        let applied = config.llm.apply(connectors, env);
        assert_eq!(applied.llm.provider, LlmProvider::OpenAi);
        // The variable named must be set, when the file is read.
        let message = ConfigFile::parse_with(text, "f.toml", &vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(
                "f.toml:5:11: connectors.llm.api_key: the environment variable MY_LLM_KEY is \
                 not set"
            ),
            "{message}"
        );
        // `config show` prints the source, masked, and reads back the same.
        let shown = config.to_string();
        assert!(
            shown.contains("api_key = { env = \"MY_LLM_KEY\" }  # ***"),
            "{shown}"
        );
        assert!(!shown.contains("sk-from-env"), "{shown}");
        let again = ConfigFile::parse_with(
            &shown,
            "shown.toml",
            &vars(&[("MY_LLM_KEY", "sk-from-env")]),
        )
        .unwrap();
        assert_eq!(again.llm, config.llm);
        assert_eq!(again.rate_limits, config.rate_limits);
    }

    #[test]
    fn a_bad_llm_section_names_its_line_and_key() {
        for (text, starts) in [
            (
                "[connectors.llm]\nprovider = \"gemini\"\n",
                "f.toml:2:12: connectors.llm.provider: ",
            ),
            (
                "[connectors.llm]\nbase_url = \"ftp://x\"\n",
                "f.toml:2:12: connectors.llm.base_url: ",
            ),
            (
                "[connectors.llm]\n\napi_key_env = \"sk-proj-abc123 secret\"\n",
                "f.toml:3:15: connectors.llm.api_key_env: ",
            ),
            (
                "[connectors.llm]\ntokens_per_minute = 0\n",
                "f.toml:2:21: connectors.llm.tokens_per_minute: ",
            ),
            (
                "[connectors.llm]\nprices = { m = { input = -1.0, output = 1.0 } }\n",
                "f.toml:2:16: connectors.llm.prices: ",
            ),
            (
                "[connectors.llm]\nrate = \"often\"\n",
                "f.toml:2:8: connectors.llm.rate: ",
            ),
        ] {
            let message = refused(text);
            assert!(message.starts_with(starts), "{text:?}: {message}");
            assert!(!message.contains("sk-proj"), "{message}");
        }
        let message = refused("[connectors.llm]\napi_key = \"sk-1\"\n");
        assert!(
            message.starts_with("f.toml:2:11: connectors.llm.api_key: a secret is never written")
                && !message.contains("sk-1"),
            "{message}"
        );
        let message = refused("[connectors.llm]\nprices = { m = { input = 1.0 } }\n");
        assert!(
            message.starts_with("f.toml:2:") && message.contains("output"),
            "{message}"
        );
    }

    #[test]
    fn the_llm_key_is_read_from_its_source_and_the_variable_still_wins() {
        let none = |_: &str| None;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llm_key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let path = path.to_str().unwrap();
        let text =
            format!("[connectors.llm]\nprovider = \"openai\"\napi_key = {{ file = {path:?} }}\n");
        let config = ConfigFile::parse_with(&text, "f.toml", &none).unwrap();
        assert_eq!(
            llm_key(&config, &none),
            Some(Secret::new("sk-from-file")),
            "the file's text without its line break"
        );
        // NEONHUB_LLM_API_KEY wins over the file, as it did over api_key_env.
        let variable =
            |name: &str| (name == "NEONHUB_LLM_API_KEY").then(|| "sk-from-variable".to_owned());
        assert_eq!(
            llm_key(&config, &variable),
            Some(Secret::new("sk-from-variable"))
        );
        let blank = |name: &str| (name == "NEONHUB_LLM_API_KEY").then(|| " ".to_owned());
        assert_eq!(llm_key(&config, &blank), Some(Secret::new("sk-from-file")));
        // `config show` names the file and masks the key; it reads back the same.
        let shown = config.to_string();
        assert!(
            shown.contains(&format!("api_key = {{ file = {path:?} }}  # ***")),
            "{shown}"
        );
        for printed in [&shown, &format!("{config:?}")] {
            assert!(!printed.contains("sk-from-file"), "{printed}");
        }
        let again = ConfigFile::parse_with(&shown, "shown.toml", &none).unwrap();
        assert_eq!(again.llm, config.llm);

        // From the environment: read when the file is read.
        let env = |name: &str| (name == "MY_LLM_KEY").then(|| "sk-from-env".to_owned());
        let config = ConfigFile::parse_with(
            "[connectors.llm]\napi_key = { env = \"MY_LLM_KEY\" }\n",
            "f.toml",
            &env,
        )
        .unwrap();
        assert_eq!(llm_key(&config, &none), Some(Secret::new("sk-from-env")));
        let shown = config.to_string();
        assert!(
            shown.contains("api_key = { env = \"MY_LLM_KEY\" }  # ***"),
            "{shown}"
        );
        for printed in [&shown, &format!("{config:?}")] {
            assert!(!printed.contains("sk-from-env"), "{printed}");
        }

        // No key named: NEONHUB_LLM_API_KEY, else the mock.
        let config = ConfigFile::parse_with("[connectors.llm]\n", "f.toml", &none).unwrap();
        assert_eq!(llm_key(&config, &none), None);
        assert_eq!(
            llm_key(&config, &variable),
            Some(Secret::new("sk-from-variable"))
        );
    }
}
