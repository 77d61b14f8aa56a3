//! Configuration shared by the commands: where the data lives, which store
//! backs it, the service's limits, the bearer token, and time arguments.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use neonhub_actors::ConnectorsConfig;
use neonhub_events::Timestamp;
use subtle::ConstantTimeEq;

/// The name of the AgentRun projection's SQLite file inside the data directory.
pub const PROJECTION_FILE: &str = "agent_runs.sqlite";

/// The name of the lock file a process writing the AgentRun table holds in
/// the data directory when the log is not embedded (the embedded log's own
/// lock covers it otherwise).
pub const DATA_LOCK_FILE: &str = "neonhub.lock";

/// The name of the event log's directory inside the data directory.
pub const LOG_DIR: &str = "log";

/// The default limit on a request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many event feeds may be open at once by default: each holds a
/// subscription and up to [`crate::server`]'s feed buffer.
pub(crate) const DEFAULT_MAX_FEED_CLIENTS: usize = 64;

/// How long a request body may take to arrive by default: a slow client's
/// 1 MiB at 64 KB/s, and no connection held for ever by one that stalls.
pub(crate) const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The built-in connectors' configuration, read from the environment:
/// `NEONHUB_CONNECTORS` (`mock` or `live`), `NEONHUB_GMAIL_TOKEN`,
/// `NEONHUB_GMAIL_CLIENT_ID`, `NEONHUB_GMAIL_CLIENT_SECRET`,
/// `NEONHUB_GMAIL_REFRESH_TOKEN`, `NEONHUB_GMAIL_TOKEN_URL`,
/// `NEONHUB_SLACK_TOKEN`, `NEONHUB_TWILIO_ACCOUNT_SID`,
/// `NEONHUB_TWILIO_AUTH_TOKEN`, `NEONHUB_TWILIO_FROM`, the
/// `NEONHUB_*_BASE_URL`s and the `NEONHUB_*_MODE`s (see
/// [`ConnectorsConfig`]'s fields); with a configuration file,
/// [`crate::ConfigFile::connectors_under`] puts these over the file's. Credentials
/// are kept in [`neonhub_actors::Secret`]s that never print. This is the
/// only place neonhub reads them.
///
/// # Errors
/// [`neonhub_actors::Error::Config`] if `NEONHUB_CONNECTORS` is neither
/// `mock` nor `live`, or if only some of Gmail's client id, client secret
/// and refresh token are set.
pub(crate) fn connectors_from_env() -> neonhub_actors::Result<ConnectorsConfig> {
    ConnectorsConfig::from_vars(|name| std::env::var(name).ok())
}

/// Which event store backs the service (the `--store` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
#[non_exhaustive]
pub enum StoreKind {
    /// The embedded log in `<data-dir>/log/` (no server needed).
    #[default]
    Embedded,
    /// An EventStoreDB / KurrentDB node or cluster (`--eventstore-url`).
    #[value(name = "eventstoredb")]
    EventStoreDb,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Embedded => f.write_str("embedded"),
            StoreKind::EventStoreDb => f.write_str("eventstoredb"),
        }
    }
}

/// An EventStoreDB connection string (`esdb://host:2113?tls=false`,
/// `esdb+discover://user:password@cluster:2113`). Its `Debug` and `Display`
/// never show the credentials (the URL's userinfo).
#[derive(Clone, PartialEq, Eq)]
pub struct EventStoreUrl {
    url: String,
}

impl EventStoreUrl {
    /// The connection string `url`, unchecked (the store checks it when it
    /// connects).
    ///
    /// # Errors
    /// An empty (or all-blank) string.
    pub fn new(url: impl Into<String>) -> Result<Self, String> {
        let url = url.into().trim().to_owned();
        if url.is_empty() {
            return Err("the EventStoreDB connection string must not be empty".to_owned());
        }
        Ok(Self { url })
    }

    /// The connection string itself, credentials included: for connecting
    /// only, never for messages.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The credentials (userinfo, before the `@` of the authority), if any.
    fn userinfo(&self) -> Option<&str> {
        let rest = &self.url[self.url.find("://").map_or(0, |i| i + 3)..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        authority.rfind('@').map(|at| &authority[..at])
    }

    /// `text` with the credentials of this URL replaced by `***` (for error
    /// messages that may quote the string).
    pub fn scrub(&self, text: &str) -> String {
        match self.userinfo().filter(|u| !u.is_empty()) {
            None => text.to_owned(),
            Some(userinfo) => {
                let mut out = text.replace(userinfo, "***");
                // A message may quote the password alone, too.
                if let Some((_, password)) = userinfo.split_once(':')
                    && !password.is_empty()
                {
                    out = out.replace(password, "***");
                }
                out
            }
        }
    }
}

impl fmt::Display for EventStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scrub(&self.url))
    }
}

impl fmt::Debug for EventStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventStoreUrl({self})")
    }
}

/// Which event store backs the service, with what it needs to open it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The embedded log in `<data-dir>/log/`.
    #[default]
    Embedded,
    /// An EventStoreDB / KurrentDB node or cluster; the AgentRun table still
    /// lives in the data directory.
    EventStoreDb {
        /// Its connection string.
        url: EventStoreUrl,
    },
}

impl StoreConfig {
    /// The store `--store` and `--eventstore-url` name.
    ///
    /// # Errors
    /// A message for people: `--store eventstoredb` without a URL.
    pub fn from_args(kind: StoreKind, url: Option<&str>) -> Result<Self, String> {
        match kind {
            StoreKind::Embedded => Ok(StoreConfig::Embedded),
            StoreKind::EventStoreDb => match url.map(str::trim).filter(|u| !u.is_empty()) {
                Some(url) => Ok(StoreConfig::EventStoreDb {
                    url: EventStoreUrl::new(url)?,
                }),
                None => Err(
                    "--store eventstoredb needs --eventstore-url URL (or NEONHUB_EVENTSTORE_URL), \
                     e.g. --eventstore-url 'esdb://localhost:2113?tls=false'"
                        .to_owned(),
                ),
            },
        }
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            StoreConfig::Embedded => StoreKind::Embedded,
            StoreConfig::EventStoreDb { .. } => StoreKind::EventStoreDb,
        }
    }
}

impl fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Embedded => f.write_str("embedded"),
            StoreConfig::EventStoreDb { url } => write!(f, "eventstoredb at {url}"),
        }
    }
}

/// Where one neonhub's data lives: the log in `<dir>/log/`, the AgentRun
/// table in `<dir>/agent_runs.sqlite` (either may be put elsewhere, by the
/// configuration file's `[store]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    dir: PathBuf,
    log: Option<PathBuf>,
    projection: Option<PathBuf>,
}

impl DataDir {
    /// The data directory `dir` (created when the store is opened).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            log: None,
            projection: None,
        }
    }

    /// This data directory with the embedded log in `dir` instead of
    /// `<data-dir>/log/`.
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log = Some(dir.into());
        self
    }

    /// This data directory with the AgentRun table in the SQLite file
    /// `path` instead of `<data-dir>/agent_runs.sqlite`.
    pub fn with_projection_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.projection = Some(path.into());
        self
    }

    /// The data directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The embedded log's directory.
    pub fn log_dir(&self) -> PathBuf {
        self.log.clone().unwrap_or_else(|| self.dir.join(LOG_DIR))
    }

    /// The lock file of a process writing the AgentRun table beside a store
    /// that is not embedded.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(DATA_LOCK_FILE)
    }

    /// The AgentRun projection's SQLite file.
    pub fn projection_path(&self) -> PathBuf {
        self.projection
            .clone()
            .unwrap_or_else(|| self.dir.join(PROJECTION_FILE))
    }

    /// The directory as an absolute path, for messages (the path as given if
    /// it cannot be resolved).
    pub fn display_path(&self) -> PathBuf {
        std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone())
    }
}

/// A bearer token. Its `Debug` never shows the value, and comparing a
/// presented token takes the same time whatever the presented bytes are.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// A token with this value.
    ///
    /// # Errors
    /// An empty (or all-blank) token is refused: it would let anyone in.
    pub fn new(value: &str) -> Result<Self, String> {
        if value.trim().is_empty() {
            return Err("the bearer token must not be empty".to_owned());
        }
        Ok(Self {
            digest: *blake3::hash(value.as_bytes()).as_bytes(),
        })
    }

    /// Whether `presented` is this token. Both sides are hashed first, so the
    /// comparison is over equal-length digests and constant-time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = blake3::hash(presented);
        bool::from(self.digest.ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A bearer token a client sends (`runs cancel`, `runs resolve`): kept as
/// given, never shown by `Debug`.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The value, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for BearerToken {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Token::new(value).map(|_| BearerToken(value.to_owned()))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// How `neonhub serve` runs the HTTP API.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The bearer token every route but `/healthz` requires; none: open.
    pub token: Option<Token>,
    /// The largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long shutdown waits for in-flight requests and runs before it
    /// fails the runs still going as `interrupted`.
    pub shutdown_timeout: Duration,
    /// How long a request body may take to arrive whole (408 past it).
    pub body_timeout: Duration,
    /// How many event feeds (`GET /v1/events`) may be open at once (503
    /// past it).
    pub max_feed_clients: usize,
    /// How many connections are served at once (more wait in the listen
    /// backlog). `None`: what the open-file limit allows (see
    /// [`crate::Server::start`]); a number above that is lowered to it.
    pub max_connections: Option<usize>,
}

impl ServeConfig {
    /// Defaults on `listen`: no token, 1 MiB bodies, one worker per core,
    /// 30 s to drain.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            shutdown_timeout: Duration::from_secs(30),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_feed_clients: DEFAULT_MAX_FEED_CLIENTS,
            max_connections: None,
        }
    }

    /// Requires `token` on every route but `/healthz`.
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// This configuration with at most `n` event feeds open at once.
    pub fn with_max_feed_clients(mut self, n: usize) -> Self {
        self.max_feed_clients = n;
        self
    }

    /// This configuration serving at most `n` connections at once.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// This configuration with request bodies given `timeout` to arrive.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }
}

/// What every time argument accepts, for `--help` texts and messages.
pub(crate) const TIME_FORMS: &str = "RFC 3339 (2026-11-24T10:00:00Z), a date (2026-11-24, midnight \
    UTC), a duration back from now (90s, 15m, 2h, 7d, 500ms), or an epoch time with its unit \
    (1795975430s, 1795975430000ms, 1795975430000000us); a number with unit s, ms or us is an \
    epoch time when it is at least 1e9 seconds (2001-09-09), else a duration back from now";

/// The smallest number of seconds read as an epoch time rather than a
/// duration back from now (2001-09-09T01:46:40Z).
const EPOCH_FROM_SECONDS: u64 = 1_000_000_000;

/// Parses a time argument: RFC 3339 (`2026-11-24T10:00:00Z`), a date
/// (`2026-11-24`, midnight UTC), a duration back from now (`90s`, `15m`,
/// `2h`, `7d`, `500ms`), or an epoch time with an explicit unit
/// (`1795975430s`, `1795975430000ms`, `1795975430000000us`). A number with
/// unit `s`, `ms` or `us` is an epoch time when its value is at least 1e9
/// seconds (2001-09-09), and a duration back from now when smaller. A bare
/// number is refused: its unit cannot be guessed.
///
/// # Errors
/// A message saying which forms are accepted (for a bare number, how to
/// write it).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    parse_time_at(text, Timestamp::now())
}

fn parse_time_at(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a time: use {TIME_FORMS}");
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is a number without a unit: write an epoch time with its unit \
             ({t}s for seconds, {t}ms for milliseconds, {t}us for microseconds) or RFC 3339 \
             (2026-11-24T10:00:00Z)"
        ));
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        let (number, unit) = t.split_at(digits);
        // Microseconds per unit, and whether a value this large is an epoch
        // time (only s, ms and us can be).
        let per_unit: Option<(u64, bool)> = match unit {
            "us" => Some((1, true)),
            "ms" => Some((1_000, true)),
            "s" => Some((1_000_000, true)),
            "m" => Some((60_000_000, false)),
            "h" => Some((3_600_000_000, false)),
            "d" => Some((86_400_000_000, false)),
            _ => None,
        };
        if let Some((per_unit, may_be_epoch)) = per_unit {
            let n: u64 = number.parse().map_err(|_| bad())?;
            let micros = n.checked_mul(per_unit).ok_or_else(bad)?;
            if may_be_epoch && micros >= EPOCH_FROM_SECONDS * 1_000_000 {
                return Ok(Timestamp(micros));
            }
            return Ok(Timestamp(now.0.saturating_sub(micros)));
        }
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return micros(at.timestamp_micros()).ok_or_else(bad);
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let at = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
        return micros(at.timestamp_micros()).ok_or_else(bad);
    }
    Err(bad())
}

fn micros(value: i64) -> Option<Timestamp> {
    u64::try_from(value).ok().map(Timestamp)
}

/// A timestamp in RFC 3339 with microseconds, UTC (`2026-11-24T10:00:00.123456Z`).
pub fn format_time(at: Timestamp) -> String {
    i64::try_from(at.0)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map_or_else(
            || at.0.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments_in_every_accepted_form() {
        let now = Timestamp(1_800_000_000_000_000);
        assert_eq!(
            parse_time_at("15m", now),
            Ok(Timestamp(now.0 - 900_000_000))
        );
        assert_eq!(
            parse_time_at("2d", now),
            Ok(Timestamp(now.0 - 172_800_000_000))
        );
        // A bare number is refused, saying how to write it.
        let err = parse_time_at("1795975430", now).unwrap_err();
        assert!(
            err.contains("1795975430s") && err.contains("1795975430ms") && err.contains("RFC 3339"),
            "{err}"
        );
        // Epoch times with a unit, from 1e9 seconds on.
        let epoch = Ok(Timestamp(1_795_975_430_000_000));
        assert_eq!(parse_time_at("1795975430s", now), epoch);
        assert_eq!(parse_time_at("1795975430000ms", now), epoch);
        assert_eq!(parse_time_at("1795975430000000us", now), epoch);
        assert_eq!(
            parse_time_at("1000000000s", now),
            Ok(Timestamp(1_000_000_000_000_000))
        );
        // Smaller: durations back from now.
        assert_eq!(parse_time_at("90s", now), Ok(Timestamp(now.0 - 90_000_000)));
        assert_eq!(
            parse_time_at("999999999s", now),
            Ok(Timestamp(now.0 - 999_999_999_000_000))
        );
        assert_eq!(parse_time_at("500ms", now), Ok(Timestamp(now.0 - 500_000)));
        assert_eq!(parse_time_at("7us", now), Ok(Timestamp(now.0 - 7)));
        // Minutes, hours and days are always durations.
        assert_eq!(
            parse_time_at("30000000m", now),
            Ok(Timestamp(now.0 - 1_800_000_000_000_000))
        );
        assert!(parse_time_at("5x", now).is_err());
        assert!(parse_time_at("99999999999999999999s", now).is_err());
        assert_eq!(
            parse_time_at("1970-01-01T00:00:01Z", now),
            Ok(Timestamp(1_000_000))
        );
        assert_eq!(
            parse_time_at("1970-01-02", now),
            Ok(Timestamp(86_400_000_000))
        );
        let err = parse_time_at("yesterday", now).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(parse_time_at("m", now).is_err());
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(
            format_time(Timestamp(1_500_000)),
            "1970-01-01T00:00:01.500000Z"
        );
    }

    #[test]
    fn eventstore_urls_never_show_their_credentials() {
        let url =
            EventStoreUrl::new("esdb+discover://admin:changeit@db.example:2113?tls=true").unwrap();
        assert_eq!(
            url.to_string(),
            "esdb+discover://***@db.example:2113?tls=true"
        );
        assert!(!format!("{url:?}").contains("changeit"));
        assert_eq!(
            url.scrub("bad 'admin:changeit' and changeit"),
            "bad '***' and ***"
        );
        assert_eq!(
            url.expose(),
            "esdb+discover://admin:changeit@db.example:2113?tls=true"
        );
        let plain = EventStoreUrl::new("esdb://localhost:2113?tls=false").unwrap();
        assert_eq!(plain.to_string(), "esdb://localhost:2113?tls=false");
        let config = StoreConfig::from_args(StoreKind::EventStoreDb, Some(url.expose())).unwrap();
        assert!(!config.to_string().contains("changeit"), "{config}");
        assert!(!format!("{config:?}").contains("changeit"));
    }

    #[test]
    fn eventstoredb_needs_a_url() {
        let err = StoreConfig::from_args(StoreKind::EventStoreDb, None).unwrap_err();
        assert!(err.contains("--eventstore-url"), "{err}");
        assert!(StoreConfig::from_args(StoreKind::EventStoreDb, Some("  ")).is_err());
        assert_eq!(
            StoreConfig::from_args(StoreKind::Embedded, Some("esdb://x:1")),
            Ok(StoreConfig::Embedded)
        );
    }

    #[test]
    fn tokens_compare_by_value_and_never_print() {
        let token = Token::new("s3cret-value").unwrap();
        assert!(token.matches(b"s3cret-value"));
        assert!(!token.matches(b"s3cret-valuf"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(Token::new("  ").is_err());
    }
}
