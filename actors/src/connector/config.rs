//! Connector configuration: mock or live mode, base URLs and credentials
//! (kept in [`Secret`]s that never print). The binary reads them (from the
//! environment) and hands them in; this crate never reads the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A credential. It never prints (`Debug` shows `Secret(***)`) and is only
/// read to build a request's auth header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Whether connectors call the real services or answer deterministically
/// without any network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectorMode {
    /// No network; ids and timestamps derived from the input.
    Mock,
    /// HTTPS requests to the configured base URL.
    Live,
}

impl FromStr for ConnectorMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mock" => Ok(Self::Mock),
            "live" => Ok(Self::Live),
            other => Err(Error::Config(format!(
                "NEONHUB_CONNECTORS must be mock or live, not {other:?}"
            ))),
        }
    }
}

/// Gmail: an OAuth access token, or what refreshes one (client id, client
/// secret and refresh token), and the API and token endpoint URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GmailConfig {
    /// Gmail's own mode (`NEONHUB_GMAIL_MODE`); `NEONHUB_CONNECTORS` wins
    /// over it.
    pub mode: Option<ConnectorMode>,
    /// The OAuth 2 bearer token (`NEONHUB_GMAIL_TOKEN`). With
    /// [`Self::refresh`] set, the first access token (optional).
    pub token: Option<Secret>,
    /// What refreshes the access token before it expires and after a 401.
    pub refresh: Option<GmailRefresh>,
    /// Default `https://gmail.googleapis.com/gmail/v1` (`NEONHUB_GMAIL_BASE_URL`).
    pub base_url: String,
    /// Google's OAuth 2 token endpoint, default
    /// `https://oauth2.googleapis.com/token` (`NEONHUB_GMAIL_TOKEN_URL`).
    pub token_url: String,
}

impl GmailConfig {
    /// Whether a token, or what refreshes one, is configured.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || self.refresh.is_some()
    }
}

/// The OAuth 2 client and refresh token that get Gmail access tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GmailRefresh {
    /// The OAuth client id (`NEONHUB_GMAIL_CLIENT_ID`).
    pub client_id: String,
    /// The OAuth client secret (`NEONHUB_GMAIL_CLIENT_SECRET`).
    pub client_secret: Secret,
    /// The refresh token (`NEONHUB_GMAIL_REFRESH_TOKEN`).
    pub refresh_token: Secret,
}

impl Default for GmailConfig {
    fn default() -> Self {
        Self {
            mode: None,
            token: None,
            refresh: None,
            base_url: "https://gmail.googleapis.com/gmail/v1".to_owned(),
            token_url: "https://oauth2.googleapis.com/token".to_owned(),
        }
    }
}

/// Slack: a bot token and the Web API base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackConfig {
    /// Slack's own mode (`NEONHUB_SLACK_MODE`); `NEONHUB_CONNECTORS` wins
    /// over it.
    pub mode: Option<ConnectorMode>,
    /// The bot token, `xoxb-...` (`NEONHUB_SLACK_TOKEN`).
    pub token: Option<Secret>,
    /// Default `https://slack.com/api` (`NEONHUB_SLACK_BASE_URL`).
    pub base_url: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            mode: None,
            token: None,
            base_url: "https://slack.com/api".to_owned(),
        }
    }
}

/// Twilio: account SID, auth token, sender number and base URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioConfig {
    /// Twilio's own mode (`NEONHUB_TWILIO_MODE`); `NEONHUB_CONNECTORS` wins
    /// over it.
    pub mode: Option<ConnectorMode>,
    /// The account SID, `AC...` (`NEONHUB_TWILIO_ACCOUNT_SID`).
    pub account_sid: Option<String>,
    /// The auth token (`NEONHUB_TWILIO_AUTH_TOKEN`).
    pub auth_token: Option<Secret>,
    /// The sending number in E.164 (`NEONHUB_TWILIO_FROM`).
    pub from: Option<String>,
    /// Default `https://api.twilio.com/2010-04-01` (`NEONHUB_TWILIO_BASE_URL`).
    pub base_url: String,
    /// Default `https://lookups.twilio.com/v2` (`NEONHUB_TWILIO_LOOKUP_BASE_URL`).
    pub lookup_base_url: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            mode: None,
            account_sid: None,
            auth_token: None,
            from: None,
            base_url: "https://api.twilio.com/2010-04-01".to_owned(),
            lookup_base_url: "https://lookups.twilio.com/v2".to_owned(),
        }
    }
}

/// Which API the `llm` connector speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LlmProvider {
    /// OpenAI's Chat Completions (`POST {base_url}/chat/completions`,
    /// `Authorization: Bearer`): OpenAI, Azure OpenAI, Ollama, vLLM and the
    /// llama.cpp server speak it.
    #[default]
    OpenAi,
    /// Anthropic's Messages (`POST {base_url}/v1/messages`, `x-api-key`).
    Anthropic,
}

impl LlmProvider {
    /// `openai` or `anthropic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LlmProvider::OpenAi => "openai",
            LlmProvider::Anthropic => "anthropic",
        }
    }

    /// The vendor's own base URL.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            LlmProvider::OpenAi => "https://api.openai.com/v1",
            LlmProvider::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The model asked for when a call names none.
    pub const fn default_model(self) -> &'static str {
        match self {
            LlmProvider::OpenAi => "gpt-4o-mini",
            LlmProvider::Anthropic => "claude-3-5-haiku-latest",
        }
    }
}

impl FromStr for LlmProvider {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(Error::Config(format!(
                "the LLM provider must be openai or anthropic, not {other:?}"
            ))),
        }
    }
}

/// A model's price in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlmPrice {
    /// Per million prompt (input) tokens.
    pub input: f64,
    /// Per million answer (output) tokens.
    pub output: f64,
}

/// The `llm` connector: provider, base URL, default model, API key, prices
/// and tokens-per-minute limit.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    /// The API spoken (`NEONHUB_LLM_PROVIDER`, default `openai`).
    pub provider: LlmProvider,
    /// The API's base URL (`NEONHUB_LLM_BASE_URL`); `None`: the provider's
    /// own ([`LlmProvider::default_base_url`]).
    pub base_url: Option<String>,
    /// The model of calls that name none (`NEONHUB_LLM_MODEL`); `None`:
    /// [`LlmProvider::default_model`].
    pub model: Option<String>,
    /// The API key (`NEONHUB_LLM_API_KEY`, or the configuration file's
    /// `api_key = { env = "VAR" }` or `{ file = "PATH" }`).
    pub api_key: Option<Secret>,
    /// Prices by model, over the built-in table (see
    /// [`crate::connector::Llm`]'s docs).
    pub prices: BTreeMap<String, LlmPrice>,
    /// Tokens per minute (`NEONHUB_LLM_TOKENS_PER_MINUTE`): each call is
    /// charged its estimate (`max_tokens` plus a quarter of the prompt's
    /// characters) before it is sent. `None`: no limit.
    pub tokens_per_minute: Option<NonZeroU32>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: LlmProvider::OpenAi,
            base_url: None,
            model: None,
            api_key: None,
            prices: BTreeMap::new(),
            tokens_per_minute: None,
        }
    }
}

/// The configuration of the built-in connectors.
///
/// Each connector is live when its credentials are set, mock otherwise;
/// its own `mode` (`NEONHUB_GMAIL_MODE=mock|live`, ...) wins over that, and
/// an explicit `mode` (`NEONHUB_CONNECTORS=mock|live`) wins for all of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectorsConfig {
    /// The explicit mode, if any.
    pub mode: Option<ConnectorMode>,
    /// Gmail.
    pub gmail: GmailConfig,
    /// Slack.
    pub slack: SlackConfig,
    /// Twilio.
    pub twilio: TwilioConfig,
    /// The language-model connector.
    pub llm: LlmConfig,
}

impl ConnectorsConfig {
    /// Every connector in mock mode.
    pub fn mock() -> Self {
        Self {
            mode: Some(ConnectorMode::Mock),
            ..Self::default()
        }
    }

    /// The configuration the `NEONHUB_*` variables named on the fields
    /// give, each looked up through `var` (the binary passes the process
    /// environment; blank values count as unset).
    ///
    /// # Errors
    /// [`Error::Config`] if `NEONHUB_CONNECTORS` is neither `mock` nor
    /// `live`, `NEONHUB_LLM_PROVIDER` neither `openai` nor `anthropic`,
    /// `NEONHUB_LLM_TOKENS_PER_MINUTE` not a positive number, or if some but not all of `NEONHUB_GMAIL_CLIENT_ID`,
    /// `NEONHUB_GMAIL_CLIENT_SECRET` and `NEONHUB_GMAIL_REFRESH_TOKEN` are set.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut config = Self {
            mode: get("NEONHUB_CONNECTORS").map(|m| m.parse()).transpose()?,
            ..Self::default()
        };
        let mode = |name: &str| {
            get(name)
                .map(|m| m.parse::<ConnectorMode>().map_err(|_| mode_error(name, &m)))
                .transpose()
        };
        config.gmail.mode = mode("NEONHUB_GMAIL_MODE")?;
        config.slack.mode = mode("NEONHUB_SLACK_MODE")?;
        config.twilio.mode = mode("NEONHUB_TWILIO_MODE")?;
        config.gmail.token = get("NEONHUB_GMAIL_TOKEN").map(Secret::new);
        if let Some(url) = get("NEONHUB_GMAIL_BASE_URL") {
            config.gmail.base_url = url;
        }
        if let Some(url) = get("NEONHUB_GMAIL_TOKEN_URL") {
            config.gmail.token_url = url;
        }
        let refresh = (
            get("NEONHUB_GMAIL_CLIENT_ID"),
            get("NEONHUB_GMAIL_CLIENT_SECRET"),
            get("NEONHUB_GMAIL_REFRESH_TOKEN"),
        );
        config.gmail.refresh = match refresh {
            (Some(client_id), Some(secret), Some(refresh)) => Some(GmailRefresh {
                client_id,
                client_secret: Secret::new(secret),
                refresh_token: Secret::new(refresh),
            }),
            (None, None, None) => None,
            _ => {
                return Err(Error::Config(
                    "refreshing Gmail tokens needs all of NEONHUB_GMAIL_CLIENT_ID, \
                     NEONHUB_GMAIL_CLIENT_SECRET and NEONHUB_GMAIL_REFRESH_TOKEN"
                        .to_owned(),
                ));
            }
        };
        config.slack.token = get("NEONHUB_SLACK_TOKEN").map(Secret::new);
        if let Some(url) = get("NEONHUB_SLACK_BASE_URL") {
            config.slack.base_url = url;
        }
        config.twilio.account_sid = get("NEONHUB_TWILIO_ACCOUNT_SID");
        config.twilio.auth_token = get("NEONHUB_TWILIO_AUTH_TOKEN").map(Secret::new);
        config.twilio.from = get("NEONHUB_TWILIO_FROM");
        if let Some(url) = get("NEONHUB_TWILIO_BASE_URL") {
            config.twilio.base_url = url;
        }
        if let Some(url) = get("NEONHUB_TWILIO_LOOKUP_BASE_URL") {
            config.twilio.lookup_base_url = url;
        }
        if let Some(provider) = get("NEONHUB_LLM_PROVIDER") {
            config.llm.provider = provider.parse()?;
        }
        config.llm.base_url = get("NEONHUB_LLM_BASE_URL");
        config.llm.model = get("NEONHUB_LLM_MODEL");
        config.llm.api_key = get("NEONHUB_LLM_API_KEY").map(Secret::new);
        if let Some(tpm) = get("NEONHUB_LLM_TOKENS_PER_MINUTE") {
            config.llm.tokens_per_minute = Some(tpm.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "NEONHUB_LLM_TOKENS_PER_MINUTE must be a whole number above 0, not {tpm:?}"
                ))
            })?);
        }
        Ok(config)
    }

    /// The mode of a connector that has (or lacks) its credentials, by
    /// the explicit `mode` alone.
    pub fn mode_for(&self, has_credentials: bool) -> ConnectorMode {
        self.mode_of(None, has_credentials)
    }

    /// The mode of a connector whose own mode is `own` and that has (or
    /// lacks) its credentials: the explicit `mode`, else its own, else live
    /// with credentials and mock without.
    pub fn mode_of(&self, own: Option<ConnectorMode>, has_credentials: bool) -> ConnectorMode {
        match self.mode.or(own) {
            Some(mode) => mode,
            None if has_credentials => ConnectorMode::Live,
            None => ConnectorMode::Mock,
        }
    }

    /// Gmail's mode.
    pub fn gmail_mode(&self) -> ConnectorMode {
        self.mode_of(self.gmail.mode, self.gmail.has_credentials())
    }

    /// Slack's mode.
    pub fn slack_mode(&self) -> ConnectorMode {
        self.mode_of(self.slack.mode, self.slack.token.is_some())
    }

    /// Twilio's mode.
    pub fn twilio_mode(&self) -> ConnectorMode {
        let t = &self.twilio;
        let has_credentials = t.account_sid.is_some() && t.auth_token.is_some() && t.from.is_some();
        self.mode_of(t.mode, has_credentials)
    }
}

fn mode_error(name: &str, value: &str) -> Error {
    Error::Config(format!("{name} must be mock or live, not {value:?}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn mock_unless_credentials_are_configured() {
        let none = ConnectorsConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(
            none.mode_for(none.gmail.token.is_some()),
            ConnectorMode::Mock
        );
        let with = ConnectorsConfig::from_vars(vars(&[("NEONHUB_GMAIL_TOKEN", "t")])).unwrap();
        assert_eq!(
            with.mode_for(with.gmail.token.is_some()),
            ConnectorMode::Live
        );
    }

    #[test]
    fn the_explicit_setting_wins() {
        let forced = ConnectorsConfig::from_vars(vars(&[
            ("NEONHUB_GMAIL_TOKEN", "t"),
            ("NEONHUB_CONNECTORS", "mock"),
        ]))
        .unwrap();
        assert_eq!(forced.mode_for(true), ConnectorMode::Mock);
        let live = ConnectorsConfig::from_vars(vars(&[("NEONHUB_CONNECTORS", "LIVE")])).unwrap();
        assert_eq!(live.mode_for(false), ConnectorMode::Live);
        assert!(ConnectorsConfig::from_vars(vars(&[("NEONHUB_CONNECTORS", "maybe")])).is_err());
    }

    #[test]
    fn each_connector_s_own_mode_gives_way_to_the_explicit_one() {
        let own = ConnectorsConfig::from_vars(vars(&[
            ("NEONHUB_SLACK_TOKEN", "t"),
            ("NEONHUB_SLACK_MODE", "mock"),
            ("NEONHUB_TWILIO_MODE", "live"),
        ]))
        .unwrap();
        assert_eq!(own.slack_mode(), ConnectorMode::Mock);
        assert_eq!(own.twilio_mode(), ConnectorMode::Live);
        assert_eq!(own.gmail_mode(), ConnectorMode::Mock);
        let forced = ConnectorsConfig::from_vars(vars(&[
            ("NEONHUB_SLACK_MODE", "live"),
            ("NEONHUB_CONNECTORS", "mock"),
        ]))
        .unwrap();
        assert_eq!(forced.slack_mode(), ConnectorMode::Mock);
        let bad = ConnectorsConfig::from_vars(vars(&[("NEONHUB_GMAIL_MODE", "sometimes")]));
        let message = bad.unwrap_err().to_string();
        assert!(message.contains("NEONHUB_GMAIL_MODE"), "{message}");
    }

    #[test]
    fn gmail_refreshes_with_all_three_or_none() {
        let all = ConnectorsConfig::from_vars(vars(&[
            ("NEONHUB_GMAIL_CLIENT_ID", "id-1"),
            ("NEONHUB_GMAIL_CLIENT_SECRET", "cs-1"),
            ("NEONHUB_GMAIL_REFRESH_TOKEN", "rt-1"),
            ("NEONHUB_GMAIL_TOKEN_URL", "http://127.0.0.1:1/token"),
        ]))
        .unwrap();
        let refresh = all.gmail.refresh.clone().unwrap();
        assert_eq!(refresh.client_id, "id-1");
        assert_eq!(refresh.refresh_token, Secret::new("rt-1"));
        assert_eq!(all.gmail.token_url, "http://127.0.0.1:1/token");
        assert!(all.gmail.has_credentials());
        assert_eq!(
            all.mode_for(all.gmail.has_credentials()),
            ConnectorMode::Live
        );
        let partial = ConnectorsConfig::from_vars(vars(&[("NEONHUB_GMAIL_CLIENT_ID", "id-1")]));
        assert!(partial.is_err());
    }

    #[test]
    fn secrets_never_print() {
        let config = ConnectorsConfig::from_vars(vars(&[
            ("NEONHUB_SLACK_TOKEN", "xoxb-very-secret"),
            ("NEONHUB_TWILIO_AUTH_TOKEN", "tw-very-secret"),
            ("NEONHUB_GMAIL_CLIENT_ID", "id-1"),
            ("NEONHUB_GMAIL_CLIENT_SECRET", "cs-very-secret"),
            ("NEONHUB_GMAIL_REFRESH_TOKEN", "rt-very-secret"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("Secret(***)"));
    }
}
