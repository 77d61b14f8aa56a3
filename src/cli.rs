//! The command line (clap): global options and one subcommand per job,
//! each with examples in its `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{EventStoreUrl, StoreConfig, StoreKind};

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
    /// <DIR>/agent_runs.sqlite.
    #[arg(
        long,
        global = true,
        env = "NEONHUB_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// The event store backing the data.
    #[arg(long, global = true, env = "NEONHUB_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
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

impl Cli {
    /// The store `--store` and `--eventstore-url` name.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for `--store eventstoredb` without a URL.
    pub fn store_config(&self) -> crate::Result<StoreConfig> {
        StoreConfig::from_args(
            self.store,
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
        Connectors are mock unless credentials are set (NEONHUB_GMAIL_TOKEN, NEONHUB_SLACK_TOKEN,\n\
        NEONHUB_TWILIO_ACCOUNT_SID/_AUTH_TOKEN/_FROM) or NEONHUB_CONNECTORS=mock|live.\n\
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
    /// Per agent and connector: runs, success rate, p50/p95/p99 latency.
    #[command(after_help = "Examples:\n  \
        neonhub report\n  \
        neonhub report --since 1h --format json")]
    Report(ReportArgs),
    /// Rebuild the AgentRun table from the log into a fresh file, up to the
    /// end, a position or a time (a point-in-time audit), with a progress bar.
    #[command(after_help = "Examples:\n  \
        neonhub replay\n  \
        neonhub replay --until-position 1000 --out /tmp/as-of-1000.sqlite\n  \
        neonhub replay --until-time 2026-11-24T10:00:00Z")]
    Replay(ReplayArgs),
    /// Audits of the log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `neonhub serve`. Its `Debug` never shows the token.
#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "NEONHUB_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on every route but /healthz.
    /// Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "NEONHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
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
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Route by intent: read AGENT as an intent.
    #[arg(long)]
    pub intent: bool,
    /// A run id (UUID) to use as an idempotency key.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `neonhub runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    #[command(after_help = "Examples:\n  \
        neonhub runs list\n  \
        neonhub runs list --agent sms --status failed --since 2h\n  \
        neonhub runs list --limit 500 --format json")]
    List(ListArgs),
    /// Show one run: its row, its child runs and its events.
    #[command(after_help = "Examples:\n  \
        neonhub runs show 0193a8f0-0000-7000-8000-000000000000\n  \
        neonhub runs show 0193a8f0-0000-7000-8000-000000000000 --format json")]
    Show(ShowArgs),
}

/// `neonhub runs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this agent or connector.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only runs with this status: running, succeeded or failed.
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs started at or after this time (RFC 3339, a date, or 15m/2h/7d ago).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `neonhub runs show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run's id.
    pub run_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `neonhub report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only runs started at or after this time (RFC 3339, a date, or 15m/2h/7d ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `neonhub replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Apply the events up to and including this position.
    #[arg(long, conflicts_with = "until_time")]
    pub until_position: Option<u64>,
    /// Apply the events recorded at or before this time.
    #[arg(long)]
    pub until_time: Option<String>,
    /// The fresh SQLite file to write (default: <data-dir>/replay-<time>.sqlite).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `neonhub audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole log: the hash chain, that every event still decodes
    /// with this build (upcasters included), and that the AgentRun table
    /// matches the log. Exit 0 with a one-line summary, non-zero naming the
    /// first bad position. On EventStoreDB there is no hash chain (it is the
    /// embedded log's): the decoding and the table are checked.
    #[command(after_help = "Examples:\n  \
        neonhub audit verify\n  \
        neonhub --data-dir /var/lib/neonhub audit verify && echo sound")]
    Verify,
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
    fn defaults() {
        let cli = Cli::try_parse_from(["neonhub", "serve"]).unwrap();
        assert_eq!(cli.store, StoreKind::Embedded);
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:4000");
    }
}
