//! The command line (clap): global options and one subcommand per job,
//! each with examples in its `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use neonhub_events::{ErrorKind, Position, RunId, RunKind, Timestamp};
use neonhub_projections::{Cursor, RunSort, RunStatus, TimelineBy};
use serde_json::Value;
use uuid::Uuid;

use crate::config::{EventStoreUrl, StoreConfig, StoreKind, Token, parse_time};

/// The `neonhub` command line.
#[derive(Debug, Parser)]
#[command(
    name = "neonhub",
    version,
    about = "An event-sourced actor runtime for AI agents and the connectors they call",
    long_about = "An event-sourced actor runtime for AI agents and the connectors they call.\n\n\
        Every run of an agent or connector is recorded as events in a log \
        (<data-dir>/log/); the AgentRun audit table (<data-dir>/agent_runs.sqlite) \
        and the metrics are built from it.",
    after_help = "Examples:\n  \
        neonhub demo                          # a mixed workload, then the audit table and report\n  \
        neonhub serve --listen 127.0.0.1:4000 # the HTTP API\n  \
        neonhub run echo --input '{\"hello\": \"world\"}'\n  \
        neonhub runs list --status failed\n  \
        neonhub audit verify\n  \
        neonhub --store eventstoredb --eventstore-url 'esdb://localhost:2113?tls=false' serve"
)]
pub struct Cli {
    /// The data directory: the log in <DIR>/log/, the AgentRun table in
    /// <DIR>/agent_runs.sqlite [default: ./data, or for `serve` the
    /// configuration file's `store.data_dir`].
    #[arg(long, global = true, env = "NEONHUB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The event store backing the data [default: embedded, or for `serve`
    /// the configuration file's `store.backend`].
    #[arg(long, global = true, env = "NEONHUB_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// The EventStoreDB / KurrentDB connection string, for `--store
    /// eventstoredb` (e.g. `esdb://localhost:2113?tls=false`; TLS is on
    /// unless it says `tls=false`). Prefer the environment variable when it
    /// holds credentials: arguments show in `ps`.
    #[arg(
        long,
        global = true,
        env = "NEONHUB_EVENTSTORE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = parse_eventstore_url
    )]
    pub eventstore_url: Option<EventStoreUrl>,
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace,
    /// or a tracing filter such as `neonhub=debug`).
    #[arg(
        long,
        global = true,
        env = "NEONHUB_LOG",
        default_value = "warn",
        value_name = "FILTER"
    )]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

fn parse_eventstore_url(text: &str) -> Result<EventStoreUrl, String> {
    EventStoreUrl::new(text)
}

/// Why one of neonhub's own value parsers refused an argument. Clap is
/// handed it as the error's source; [`Cli::parse_args`] prints it on one
/// line after the argument's name.
#[derive(Debug)]
struct BadValue(String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

/// A value refused as a usage error (exit status 2), as clap's own are:
/// shown as one line after the argument's name.
#[derive(Debug)]
struct BadUsage(String);

impl std::fmt::Display for BadUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadUsage {}

/// An `--anchor`: JSON, or `@FILE`.
fn anchor_arg(text: &str) -> Result<crate::anchor::Anchor, BadUsage> {
    crate::anchor::Anchor::parse_arg(text).map_err(BadUsage)
}

/// A time argument: see [`parse_time`]. A usage error (exit status 2), so
/// a bare number, whose unit cannot be guessed, changes nothing.
fn time_arg(text: &str) -> Result<Timestamp, BadUsage> {
    parse_time(text).map_err(BadUsage)
}

/// The forms of a time argument, for the `--help` of the commands taking
/// one (a macro, so it joins their examples with `concat!`).
macro_rules! times_help {
    () => {
        "\n\nTimes (--since, --until, --until-time): RFC 3339 (2026-11-24T10:00:00Z), a date \
         (2026-11-24, midnight UTC), a duration back from now (90s, 15m, 2h, 7d, 500ms), or an \
         epoch time with its unit (1795975430s, 1795975430000ms, 1795975430000000us). A number \
         with unit s, ms or us is an epoch time when it is at least 1e9 seconds (2001-09-09), \
         else a duration back from now. A bare number (1795975430) is refused: add its unit."
    };
}

fn kind_arg(text: &str) -> Result<RunKind, BadValue> {
    match text {
        "agent" => Ok(RunKind::Agent),
        "connector" => Ok(RunKind::Connector),
        _ => Err(BadValue(format!(
            "{text:?} is not a kind: use agent or connector"
        ))),
    }
}

fn error_kind_arg(text: &str) -> Result<ErrorKind, BadValue> {
    ErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
            BadValue(format!(
                "{text:?} is not an error kind: use one of {}",
                kinds.join(", ")
            ))
        })
}

fn sort_arg(text: &str) -> Result<RunSort, BadValue> {
    text.parse()
        .map_err(|_| BadValue(format!("{text:?}: use started or duration")))
}

fn by_arg(text: &str) -> Result<TimelineBy, BadValue> {
    text.parse()
        .map_err(|_| BadValue(format!("{text:?}: use hour or day")))
}

/// `--limit`: a whole number from 1, a usage error (exit status 2) else.
fn limit_arg(text: &str) -> Result<u64, BadUsage> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(BadUsage(format!(
            "{text:?} is not a number of runs: use 1 or more, or --all for every run"
        ))),
    }
}

fn cursor_arg(text: &str) -> Result<Cursor, BadValue> {
    text.parse().map_err(|_| {
        BadValue(format!(
            "{text:?} is not a cursor a previous `runs list` printed"
        ))
    })
}

fn uuid_arg(text: &str) -> Result<Uuid, BadValue> {
    Uuid::parse_str(text).map_err(|_| BadValue(format!("{text:?} is not a UUID")))
}

fn status_arg(text: &str) -> Result<RunStatus, BadValue> {
    text.parse().map_err(|_| {
        BadValue(format!(
            "{text:?} is not a run status: use running, succeeded or failed"
        ))
    })
}

fn run_id_arg(text: &str) -> Result<RunId, BadValue> {
    text.parse()
        .map_err(|_| BadValue(format!("{text:?} is not a run id (a UUID)")))
}

fn json_arg(text: &str) -> Result<Value, BadValue> {
    serde_json::from_str(text).map_err(|e| BadValue(format!("not valid JSON: {e}")))
}

fn node_id_arg(text: &str) -> Result<neonhub_events::NodeId, BadValue> {
    neonhub_events::NodeId::new(text).map_err(|e| BadValue(e.to_string()))
}

fn token_arg(text: &str) -> Result<Token, BadValue> {
    Token::new(text).map_err(BadValue)
}

/// A position in the log, as a number (the message is clap's for numbers).
fn position_arg(text: &str) -> Result<Position, String> {
    text.parse()
        .map(Position)
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

/// The one line (without `error: `) for an argument one of neonhub's own
/// parsers refused: `--since: "someday" is not a time: ...`, or the reason
/// alone for a positional argument. `None` for any other error.
fn bad_value_line(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let source = std::error::Error::source(error)?;
    let reason: &dyn std::fmt::Display = match source.downcast_ref::<BadValue>() {
        Some(reason) => reason,
        None => source.downcast_ref::<BadUsage>()?,
    };
    match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) if arg.starts_with('-') => {
            let flag = arg.split_whitespace().next().unwrap_or(arg);
            Some(format!("{flag}: {reason}"))
        }
        _ => Some(reason.to_string()),
    }
}

impl Cli {
    /// Parses the process's arguments as [`Parser::parse`] does (`--help`,
    /// `--version` and malformed command lines print clap's text and exit),
    /// except that a value neonhub's own parsers refuse (a time, a status, a
    /// run id, JSON, a token) ends the process with one line naming the
    /// argument, `error: --since: ...`, and exit status 1 (2 for a usage
    /// error: an `--anchor` or a time that does not parse).
    pub fn parse_args() -> Self {
        Self::try_parse().unwrap_or_else(|error| match bad_value_line(&error) {
            Some(line) => {
                eprintln!("error: {line}");
                let usage = std::error::Error::source(&error)
                    .is_some_and(|s| s.downcast_ref::<BadUsage>().is_some());
                std::process::exit(if usage { 2 } else { 1 })
            }
            None => error.exit(),
        })
    }

    /// The store `--store` and `--eventstore-url` name.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for `--store eventstoredb` without a URL.
    pub fn store_config(&self) -> crate::Result<StoreConfig> {
        StoreConfig::from_args(
            self.store.unwrap_or_default(),
            self.eventstore_url.as_ref().map(EventStoreUrl::expose),
        )
        .map_err(crate::Error::Usage)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the HTTP API, the orchestrator with the built-in
    /// agents and connectors, the projections following the log, /metrics.
    #[command(after_help = "Examples:\n  \
        neonhub serve\n  \
        neonhub serve --listen 0.0.0.0:4000 --token \"$(cat /run/secrets/neonhub)\"\n  \
        NEONHUB_TOKEN=s3cret neonhub --data-dir /var/lib/neonhub serve\n\n\
        Connectors are mock unless credentials are set (NEONHUB_GMAIL_TOKEN, or\n\
        NEONHUB_GMAIL_CLIENT_ID/_CLIENT_SECRET/_REFRESH_TOKEN to refresh Gmail tokens at\n\
        NEONHUB_GMAIL_TOKEN_URL; NEONHUB_SLACK_TOKEN; NEONHUB_TWILIO_ACCOUNT_SID/_AUTH_TOKEN/_FROM)\n\
        or NEONHUB_CONNECTORS=mock|live.\n\
        SIGINT/SIGTERM: stop accepting, finish (or fail as interrupted) in-flight runs, exit 0.")]
    Serve(ServeArgs),
    /// Run a realistic mixed workload through the built-in agents on mock
    /// connectors, then print the latest audit rows, the per-agent report and
    /// where the data lives.
    #[command(after_help = "Examples:\n  \
        neonhub demo\n  \
        neonhub demo --runs 1000\n  \
        neonhub --data-dir /tmp/neonhub-demo demo")]
    Demo(DemoArgs),
    /// Run one agent and print its outcome (connectors are mock unless
    /// configured live, as for `serve`).
    #[command(after_help = "Examples:\n  \
        neonhub run echo --input '{\"hello\": \"world\"}'\n  \
        neonhub run sms --input '{\"to\": \"+15550100\", \"body\": \"hi\"}'\n  \
        neonhub run content --intent --input '{\"topic\": \"neonhub\"}'   # AGENT read as an intent")]
    Run(RunArgs),
    /// List runs or show one, from the AgentRun table.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Per agent and connector: runs, success rate, p50/p95/p99 latency;
    /// or with --by, runs, failures and p50/p95/p99 per hour or day. From
    /// the AgentRun table as it stands; the log is not opened.
    #[command(after_help = concat!("Examples:\n  \
        neonhub report\n  \
        neonhub report --since 1h --format json\n  \
        neonhub report --since 2026-11-01 --until 2026-11-08 --format csv\n  \
        neonhub report --by hour --since 24h --agent slack --kind connector", times_help!()))]
    Report(ReportArgs),
    /// Rebuild the AgentRun table from the log into a fresh file, up to the
    /// end, a position or a time (a point-in-time audit), with a progress bar.
    #[command(after_help = concat!("Examples:\n  \
        neonhub replay\n  \
        neonhub replay --until-position 1000 --out /tmp/as-of-1000.sqlite\n  \
        neonhub replay --until-time 2026-11-24T10:00:00Z\n  \
        neonhub replay --until-time 1795975430s", times_help!()))]
    Replay(ReplayArgs),
    /// Audits of the log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Maintenance of the embedded log.
    #[command(subcommand)]
    Log(LogCommand),
    /// The configuration file: check one, or show the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `neonhub config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: exit 0 if `serve --config FILE` would
    /// take it, else name the line and key that are wrong.
    #[command(after_help = "Examples:\n  neonhub config check neonhub.toml")]
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the effective configuration (the file's settings over the
    /// defaults), as TOML. The file holds no secrets; credentials it names
    /// show as their source and `***`.
    #[command(after_help = "Examples:\n  neonhub config show --config neonhub.toml")]
    Show {
        /// The file (default: none, every default).
        #[arg(long, env = "NEONHUB_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `neonhub log ...`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Cut the embedded log at the damage that keeps it from opening
    /// (corruption reported with a segment and an offset), keeping every
    /// removed byte in quarantine files beside the segments; nothing is
    /// deleted. Only when asked: `serve` never does this by itself. Stop
    /// `serve` first.
    #[command(after_help = "Examples:\n  \
        neonhub log repair\n  \
        neonhub --data-dir /var/lib/neonhub log repair")]
    Repair,
    /// Move whole sealed segments whose newest event was recorded before
    /// --before out of the live log into --to, compressed (zstd), oldest
    /// first; never the segment being written. The chain stays provable:
    /// the live log records each archived segment (events, last hash, time
    /// range, file, checksum) in <log>/ARCHIVE.json and continues its last
    /// hash; `audit verify --archive DIR` re-checks the archive. Rows of
    /// archived runs stay in the AgentRun table; reading an archived run's
    /// events says where they went. Runs beside `serve`.
    #[command(after_help = "Examples:\n  \
        neonhub log archive --before 30d --to /mnt/cold/neonhub-archive\n  \
        neonhub log archive --before 2026-11-01T00:00:00Z --to /mnt/cold/neonhub-archive\n  \
        neonhub audit verify --archive /mnt/cold/neonhub-archive")]
    Archive(ArchiveArgs),
}

/// `neonhub log archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The cut-off: a sealed segment is archived when its newest event was
    /// recorded before it. RFC 3339 (2026-11-01T00:00:00Z), a date
    /// (2026-11-01, midnight UTC) or a duration back from now (30d, 12h,
    /// 90m, 3600s).
    #[arg(long, value_name = "TIME", value_parser = before_arg)]
    pub before: Timestamp,
    /// The archive directory (created if missing): the compressed segments,
    /// their index files and MANIFEST.json go there.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// `--before`: a time, refused as a usage error (exit status 2).
fn before_arg(text: &str) -> Result<Timestamp, BadUsage> {
    parse_time(text).map_err(BadUsage)
}

/// `neonhub serve`. Its `Debug` never shows the token.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (the server, the store, agents, connectors
    /// and their credentials' sources); its settings give way to these
    /// flags and the variables. See neonhub.example.toml.
    #[arg(long, env = "NEONHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// The address to listen on (default: the file's `server.listen`, else
    /// 127.0.0.1:4000).
    #[arg(long, env = "NEONHUB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <TOKEN>` on every route but /healthz.
    /// Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "NEONHUB_TOKEN", hide_env_values = true, value_parser = token_arg)]
    pub token: Option<Token>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// The bound on runs in flight; above it runs are refused with 503.
    #[arg(long, default_value_t = neonhub_actors::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seconds shutdown waits for in-flight requests and runs.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Event feeds (GET /v1/events) open at once; one more gets 503.
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_FEED_CLIENTS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_feed_clients: usize,
    /// Connections served at once; more wait in the listen backlog until
    /// one closes. Default: what the open-file limit (raised to its hard
    /// limit at start) leaves after 256 files for the log and the table,
    /// at 4 files per connection (its socket and a table read's SQLite
    /// files), at most 10000. A larger number is lowered to that.
    #[arg(long, env = "NEONHUB_MAX_CONNECTIONS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,
    /// Seconds a request body may take to arrive whole (408 past it).
    #[arg(long, default_value_t = crate::config::DEFAULT_BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Seconds between SIGTERM and closing the listener, while new work
    /// gets 503 and /readyz 503, so a load balancer can move away first.
    /// SIGINT (Ctrl-C), or a second signal, skips it.
    #[arg(long, env = "NEONHUB_DRAIN_GRACE", default_value_t = 5)]
    pub drain_grace: u64,
    /// Runs a stopped process left unfinished: `resume` gives each agent run
    /// a new attempt whose finished steps replay (steps in doubt are not
    /// resent); `fail` closes them as `interrupted`.
    #[arg(long, value_enum, default_value_t = crate::OnInterrupted::Resume)]
    pub on_interrupted: crate::OnInterrupted,
    /// The most times one run is resumed; past it, it is closed.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_RESUMES)]
    pub max_resumes: u32,
    /// On EventStoreDB: this node's id (1 to 64 ASCII letters, digits and
    /// `-_.`), named in the runs it executes. Give each node sharing a store
    /// its own, and keep it across restarts. Default: an id generated once
    /// and kept in `<data-dir>/node-id`.
    #[arg(long, env = "NEONHUB_NODE_ID", value_parser = node_id_arg)]
    pub node_id: Option<neonhub_events::NodeId>,
    /// On EventStoreDB: the node's lease, in seconds. It renews it every
    /// third of that; other nodes resume its runs once they have seen no
    /// renewal for a whole lease.
    #[arg(long, default_value_t = neonhub_actors::DEFAULT_LEASE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_secs: u64,
    /// The connectors' rate limits.
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
}

/// The built-in connectors' rate limits. Each is `default` (the vendor's
/// published limit for a live connector, none for a mock), `off`, or a rate
/// `N/s`, `N/min` or `N/h`. A call over a limit waits for its turn, up to
/// its run's deadline; only then does it fail `rate_limited`.
#[derive(Debug, Args)]
pub struct RateLimitArgs {
    /// Gmail calls of the whole project (default live: 200/s, the
    /// project's 1.2M quota units a minute at 100 a send).
    #[arg(long, env = "NEONHUB_GMAIL_RATE", default_value = "default", value_parser = rate_limit_arg)]
    pub gmail_rate: neonhub_actors::Limit,
    /// Gmail calls per user (default live: 5 per 2 s, 250 quota units a
    /// second at 100 a send).
    #[arg(long, env = "NEONHUB_GMAIL_RATE_PER_USER", default_value = "default", value_parser = rate_limit_arg)]
    pub gmail_rate_per_user: neonhub_actors::Limit,
    /// Slack calls of the whole workspace (default live: 100/min, Tier 4).
    #[arg(long, env = "NEONHUB_SLACK_RATE", default_value = "default", value_parser = rate_limit_arg)]
    pub slack_rate: neonhub_actors::Limit,
    /// Slack posts per channel (default live: 1/s, chat.postMessage's).
    #[arg(long, env = "NEONHUB_SLACK_RATE_PER_CHANNEL", default_value = "default", value_parser = rate_limit_arg)]
    pub slack_rate_per_channel: neonhub_actors::Limit,
    /// Twilio calls of the whole account (default live: 100/s).
    #[arg(long, env = "NEONHUB_TWILIO_RATE", default_value = "default", value_parser = rate_limit_arg)]
    pub twilio_rate: neonhub_actors::Limit,
    /// Twilio sends per sending number (default live: 1/s, a long code's).
    #[arg(long, env = "NEONHUB_TWILIO_RATE_PER_NUMBER", default_value = "default", value_parser = rate_limit_arg)]
    pub twilio_rate_per_number: neonhub_actors::Limit,
    /// Language-model (`llm`) requests of the whole account (default: none;
    /// set your tier's, e.g. `500/min`).
    #[arg(long, env = "NEONHUB_LLM_RATE", default_value = "default", value_parser = rate_limit_arg)]
    pub llm_rate: neonhub_actors::Limit,
    /// Language-model requests per model (default: none).
    #[arg(long, env = "NEONHUB_LLM_RATE_PER_MODEL", default_value = "default", value_parser = rate_limit_arg)]
    pub llm_rate_per_model: neonhub_actors::Limit,
    /// Calls waiting for a rate-limit permit at once, per connector; one
    /// more fails `rate_limited` at once.
    #[arg(long, env = "NEONHUB_RATE_LIMIT_MAX_WAITING", default_value_t = neonhub_actors::DEFAULT_MAX_WAITING, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub rate_limit_max_waiting: usize,
}

impl RateLimitArgs {
    /// The configuration these flags give.
    pub fn config(&self) -> neonhub_actors::RateLimitsConfig {
        use neonhub_actors::ConnectorLimits;
        neonhub_actors::RateLimitsConfig {
            gmail: ConnectorLimits {
                connector: self.gmail_rate,
                per_key: self.gmail_rate_per_user,
            },
            slack: ConnectorLimits {
                connector: self.slack_rate,
                per_key: self.slack_rate_per_channel,
            },
            twilio: ConnectorLimits {
                connector: self.twilio_rate,
                per_key: self.twilio_rate_per_number,
            },
            llm: ConnectorLimits {
                connector: self.llm_rate,
                per_key: self.llm_rate_per_model,
            },
            max_waiting: self.rate_limit_max_waiting,
        }
    }
}

fn rate_limit_arg(text: &str) -> std::result::Result<neonhub_actors::Limit, String> {
    text.parse()
        .map_err(|e: neonhub_actors::Error| e.to_string())
}

/// `neonhub demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many runs to submit.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// How many of the latest audit rows to print.
    #[arg(long, default_value_t = 15)]
    pub rows: usize,
}

/// `neonhub run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's name (or, with --intent, an intent such as sms.send).
    pub agent: String,
    /// The input, as JSON.
    #[arg(long, default_value = "{}", value_parser = json_arg)]
    pub input: Value,
    /// Route by intent: read AGENT as an intent.
    #[arg(long)]
    pub intent: bool,
    /// A run id (UUID) to use as an idempotency key.
    #[arg(long, value_parser = run_id_arg)]
    pub run_id: Option<RunId>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The connectors' rate limits.
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
}

/// `neonhub runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, from the AgentRun table as it stands (a
    /// running `neonhub serve` keeps it current); the log is not opened.
    #[command(after_help = concat!("Examples:\n  \
        neonhub runs list\n  \
        neonhub runs list --agent slack --kind connector --status failed --since 2h\n  \
        neonhub runs list --error-kind in_doubt --since 2026-11-01 --until 2026-11-02\n  \
        neonhub runs list --sort duration --kind connector --limit 10\n  \
        neonhub runs list --limit 500 --cursor 1795975430000000_1234   # the next page\n  \
        neonhub runs list --all --since 7d --format csv > runs.csv", times_help!()))]
    List(ListArgs),
    /// Show one run: its row, its child runs and its events.
    #[command(after_help = "Examples:\n  \
        neonhub runs show 0193a8f0-0000-7000-8000-000000000000\n  \
        neonhub runs show 0193a8f0-0000-7000-8000-000000000000 --format json")]
    Show(ShowArgs),
    /// Every run of one request: the runs sharing the correlation of a run
    /// (or a correlation id), as an indented tree of parents and children,
    /// from the AgentRun table as it stands; the log is not opened. At most
    /// 10,000 runs (the rest is said to be left out).
    #[command(after_help = "Examples:\n  \
        neonhub runs tree 0193a8f0-0000-7000-8000-000000000000\n  \
        neonhub runs tree 0193a8f0-0000-7000-8000-000000000000 --format jsonl")]
    Tree(TreeArgs),
    /// Cancel a run that a running `neonhub serve` executes: it ends failed
    /// with kind `cancelled`.
    #[command(after_help = "Examples:\n  \
        neonhub runs cancel 0193a8f0-0000-7000-8000-000000000000\n  \
        neonhub runs cancel 0193a8f0-0000-7000-8000-000000000000 --reason 'wrong recipient' \\\n    \
        --server http://10.0.0.5:4000")]
    Cancel(CancelArgs),
    /// Settle a step that ended in_doubt (it may or may not have reached the
    /// vendor): record what you found out, and the run resumes.
    #[command(after_help = "Examples:\n  \
        neonhub runs resolve 0193a8f0-0000-7000-8000-000000000000 --step twilio.send_sms#1 --sent\n  \
        neonhub runs resolve 0193a8f0-0000-7000-8000-000000000000 --step notify-owner --not-sent \\\n    \
        --by dana --reason 'not in the Slack channel'")]
    Resolve(ResolveArgs),
}

/// Where a running `neonhub serve` answers, and its token.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The base URL of the running `neonhub serve`.
    #[arg(long, env = "NEONHUB_SERVER", default_value = "http://127.0.0.1:4000")]
    pub server: String,
    /// The bearer token the server requires, if any. Never printed.
    #[arg(long, env = "NEONHUB_TOKEN", hide_env_values = true)]
    pub token: Option<crate::config::BearerToken>,
}

/// `neonhub runs cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run's id.
    #[arg(value_parser = run_id_arg)]
    pub run_id: RunId,
    /// Why, recorded in the run's error message.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `neonhub runs resolve`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("outcome").required(true).args(["sent", "not_sent"])))]
pub struct ResolveArgs {
    /// The run's id.
    #[arg(value_parser = run_id_arg)]
    pub run_id: RunId,
    /// The step's key (`runs show RUN_ID` lists them), e.g. twilio.send_sms#1.
    #[arg(long)]
    pub step: String,
    /// The vendor did it: the step counts as succeeded and is not sent again.
    #[arg(long)]
    pub sent: bool,
    /// The vendor never got it: the step is executed again.
    #[arg(long)]
    pub not_sent: bool,
    /// Who decides, for the audit (default: $USER).
    #[arg(long, env = "USER")]
    pub by: String,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `neonhub runs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this agent or connector (both, unless --kind).
    #[arg(long)]
    pub agent: Option<String>,
    /// Only agent runs, or only connector runs: agent or connector.
    #[arg(long, value_parser = kind_arg)]
    pub kind: Option<RunKind>,
    /// Only runs with this status: running, succeeded or failed.
    #[arg(long, value_parser = status_arg)]
    pub status: Option<RunStatus>,
    /// Only runs whose error is of this kind (timeout, panicked, agent,
    /// connector, circuit_open, rate_limited, interrupted, rejected,
    /// in_doubt, cancelled).
    #[arg(long, value_parser = error_kind_arg)]
    pub error_kind: Option<ErrorKind>,
    /// Only runs of this request (a correlation id, UUID).
    #[arg(long, value_parser = uuid_arg)]
    pub correlation: Option<Uuid>,
    /// Only runs started at or after this time (see Times below).
    #[arg(long, value_parser = time_arg)]
    pub since: Option<Timestamp>,
    /// Only runs started before this time (see Times below).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<Timestamp>,
    /// The order: started (newest first) or duration (longest first;
    /// finished runs only).
    #[arg(long, value_parser = sort_arg, default_value = "started")]
    pub sort: RunSort,
    /// At most this many runs (read from the table a page of at most 1000
    /// at a time). When more match, the cursor of the next page is printed
    /// (on stderr as `next cursor: C`; in the `next_cursor` field with
    /// --format json).
    #[arg(long, default_value_t = 20, value_parser = limit_arg)]
    pub limit: u64,
    /// Start after this cursor (printed by the previous page; give the
    /// same filters and --sort).
    #[arg(long, value_parser = cursor_arg)]
    pub cursor: Option<Cursor>,
    /// Every matching run, page by page (memory stays flat); no --limit.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `neonhub runs show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run's id.
    #[arg(value_parser = run_id_arg)]
    pub run_id: RunId,
    /// Output format (csv: the run and its child runs, one per line,
    /// without the events).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `neonhub runs tree`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// A run id (its request's runs are shown) or a correlation id.
    #[arg(value_name = "RUN_OR_CORRELATION_ID", value_parser = uuid_arg)]
    pub id: Uuid,
    /// Output format (json: `{"correlation_id", "runs", "truncated"}` as
    /// `GET /v1/runs/{id}/tree`; jsonl and csv: one run per line).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `neonhub report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only runs started at or after this time (see Times below). With
    /// --by: default 24 h (by hour) or 30 days (by day) before --until.
    #[arg(long, value_parser = time_arg)]
    pub since: Option<Timestamp>,
    /// Only runs started before this time (see Times below); with --by,
    /// default now.
    #[arg(long, value_parser = time_arg)]
    pub until: Option<Timestamp>,
    /// Per hour or day of start (UTC), over all runs or those of --agent
    /// and --kind: runs, failures, p50/p95/p99. At most 1000 buckets.
    #[arg(long, value_parser = by_arg)]
    pub by: Option<TimelineBy>,
    /// With --by: only runs of this agent or connector.
    #[arg(long, requires = "by")]
    pub agent: Option<String>,
    /// With --by: only agent runs, or only connector runs.
    #[arg(long, requires = "by", value_parser = kind_arg)]
    pub kind: Option<RunKind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `neonhub replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Apply the events up to and including this position.
    #[arg(long, conflicts_with = "until_time", value_parser = position_arg)]
    pub until_position: Option<Position>,
    /// Apply the events recorded at or before this time (see Times below).
    #[arg(long, value_parser = time_arg)]
    pub until_time: Option<Timestamp>,
    /// The fresh SQLite file to write (default: <data-dir>/replay-<time>.sqlite).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `neonhub audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole log: the hash chain, that every event still decodes
    /// with this build (upcasters included), that every column of every row
    /// and every metric series of the AgentRun table match the log, that the
    /// table is not ahead of the log, and that the log still holds each
    /// --anchor. Exit 0 with a one-line summary, non-zero listing what is
    /// wrong. On EventStoreDB there is no hash chain (it is the embedded
    /// log's): the decoding and the table are checked.
    #[command(after_help = "Examples:\n  \
        neonhub audit verify\n  \
        neonhub audit verify --anchor @anchor-2026-11-30.json\n  \
        neonhub --data-dir /var/lib/neonhub audit verify && echo sound")]
    Verify(VerifyArgs),
    /// Print the log's head (position, hash chain value, events, time) as an
    /// anchor to keep outside neonhub (a ticket, a notary, another system);
    /// `audit verify --anchor` later proves the log still holds it.
    #[command(after_help = "Examples:\n  \
        neonhub audit anchor\n  \
        neonhub audit anchor --format json > anchor-$(date +%F).json")]
    Anchor(AnchorArgs),
}

/// `neonhub audit verify`.
#[derive(Debug, Default, Args)]
pub struct VerifyArgs {
    /// An anchor printed earlier by `neonhub audit anchor --format json`
    /// (the JSON, or @FILE to read it from a file); the audit fails unless
    /// the log holds its position with its hash. Repeatable.
    #[arg(long = "anchor", value_name = "JSON|@FILE", value_parser = anchor_arg)]
    pub anchors: Vec<crate::anchor::Anchor>,
    /// The archive directory `neonhub log archive --to` wrote: re-check the
    /// archived segments too (checksums, records, the chain from the first
    /// event) and that the live log continues them. Without it, the archived
    /// events are not re-checked: the live log is proved to continue the
    /// last hash the archive manifest records.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
}

/// `neonhub audit anchor`.
#[derive(Debug, Default, Args)]
pub struct AnchorArgs {
    /// Text for people (the default) or the JSON `audit verify --anchor` reads.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// How the reporting commands (`runs list|show|tree`, `report`) print
/// their result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON, the shapes the HTTP API answers with.
    Json,
    /// JSON Lines: one compact object per line (a run, a report row, a
    /// bucket).
    Jsonl,
    /// CSV with a header line (RFC 4180).
    Csv,
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON, the shapes the HTTP API answers with.
    Json,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_every_command_has_examples() {
        let command = Cli::command();
        command.clone().debug_assert();
        fn check(cmd: &clap::Command, path: &str) {
            let subs: Vec<_> = cmd.get_subcommands().collect();
            if subs.is_empty() {
                let help = cmd
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(help.contains("Examples:"), "{path} has no examples");
            }
            for sub in subs {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&command, "neonhub");
    }

    #[test]
    fn the_token_never_prints() {
        let cli = Cli::try_parse_from(["neonhub", "serve", "--token", "hunter2-secret"]).unwrap();
        assert!(!format!("{cli:?}").contains("hunter2"));
    }

    #[test]
    fn eventstoredb_takes_a_url_that_never_prints() {
        let cli = Cli::try_parse_from([
            "neonhub",
            "--store",
            "eventstoredb",
            "--eventstore-url",
            "esdb://admin:changeit@db:2113?tls=false",
            "runs",
            "list",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("changeit"));
        let config = cli.store_config().unwrap();
        assert_eq!(config.kind(), StoreKind::EventStoreDb);
        let cli = Cli::try_parse_from(["neonhub", "--store", "eventstoredb", "audit", "verify"]);
        if std::env::var_os("NEONHUB_EVENTSTORE_URL").is_none() {
            let err = cli.unwrap().store_config().unwrap_err();
            assert!(err.to_string().contains("--eventstore-url"), "{err}");
        }
    }

    #[test]
    fn arguments_arrive_typed() {
        let cli = Cli::try_parse_from([
            "neonhub",
            "runs",
            "list",
            "--status",
            "failed",
            "--since",
            "1970-01-02",
        ])
        .unwrap();
        let Command::Runs(RunsCommand::List(args)) = cli.command else {
            panic!("not runs list")
        };
        assert_eq!(args.status, Some(RunStatus::Failed));
        assert_eq!(args.since, Some(Timestamp(86_400_000_000)));
        let cli = Cli::try_parse_from(["neonhub", "replay", "--until-position", "9"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("not replay")
        };
        assert_eq!(args.until_position, Some(Position(9)));
        let id = "0193a8f0-0000-7000-8000-000000000000";
        let cli = Cli::try_parse_from(["neonhub", "run", "echo", "--run-id", id]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.run_id, Some(id.parse().unwrap()));
        assert_eq!(args.input, serde_json::json!({}));
    }

    fn bad_value(args: &[&str]) -> Option<String> {
        bad_value_line(&Cli::try_parse_from(args).unwrap_err())
    }

    #[test]
    fn a_refused_value_is_one_line_naming_the_argument() {
        let since = bad_value(&["neonhub", "runs", "list", "--since", "someday"]).unwrap();
        assert!(
            since.starts_with("--since: \"someday\" is not a time"),
            "{since}"
        );
        let status = bad_value(&["neonhub", "runs", "list", "--status", "bogus"]).unwrap();
        assert!(status.starts_with("--status: \"bogus\""), "{status}");
        let until = bad_value(&["neonhub", "replay", "--until-time", "x"]).unwrap();
        assert!(until.starts_with("--until-time: "), "{until}");
        let input = bad_value(&["neonhub", "run", "echo", "--input", "{"]).unwrap();
        assert!(input.starts_with("--input: not valid JSON"), "{input}");
        let show = bad_value(&["neonhub", "runs", "show", "nope"]).unwrap();
        assert_eq!(show, "\"nope\" is not a run id (a UUID)");
        let token = bad_value(&["neonhub", "serve", "--token", " "]).unwrap();
        assert_eq!(token, "--token: the bearer token must not be empty");
        // Clap's own parsers and other mistakes keep clap's text.
        assert_eq!(bad_value(&["neonhub", "serve", "--listen", "x"]), None);
        assert_eq!(
            bad_value(&["neonhub", "replay", "--until-position", "x"]),
            None
        );
        assert_eq!(bad_value(&["neonhub", "nonsense"]), None);
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["neonhub", "serve"]).unwrap();
        assert_eq!(cli.store, None);
        assert_eq!(cli.data_dir, None);
        assert_eq!(cli.store_config().unwrap(), StoreConfig::Embedded);
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.listen, None);
    }
}
