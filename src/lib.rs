//! neonhub: the service and command line that wire the event store, the
//! actors and the projections together.
//!
//! [`Service`] opens the store, closes runs a dead process left unfinished,
//! catches the AgentRun table up and starts the orchestrator; [`Server`]
//! serves the HTTP API over it; [`run`] is the `neonhub` command line.
//!
//! ```no_run
//! use neonhub::{DataDir, ServeConfig, Server, Service, ServiceOptions};
//! # async fn serve() -> neonhub::Result<()> {
//! let service = Service::start(ServiceOptions::new(DataDir::new("./data"))).await?;
//! let server = Server::start(&service, &ServeConfig::new("127.0.0.1:4000".parse().unwrap()))?;
//! println!("listening on {}", server.local_addr());
//! server.stop().await?;
//! service.shutdown(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

#![warn(unreachable_pub, missing_docs)]

mod anchor;
mod cli;
mod cluster;
mod commands;
mod config;
mod config_file;
mod error;
mod logging;
mod recovery;
mod server;
mod service;
mod store;
mod view;

pub use anchor::Anchor;
pub use cli::{
    AnchorArgs, ArchiveArgs, AuditCommand, Cli, Command, ConfigCommand, DemoArgs, Format, ListArgs,
    LogCommand, OutputFormat, RateLimitArgs, ReplayArgs, ReportArgs, RunArgs, RunsCommand,
    ServeArgs, ShowArgs, TreeArgs, VerifyArgs,
};
pub use cluster::{ClusterOptions, NODE_ID_FILE};
pub use commands::run;
pub use config::{
    DATA_LOCK_FILE, DEFAULT_MAX_BODY_BYTES, DataDir, EventStoreUrl, LOG_DIR, PROJECTION_FILE,
    ServeConfig, StoreConfig, StoreKind, Token, format_time, parse_time,
};
pub use config_file::{
    AgentConfig, BUILTIN_AGENTS, ConfigError, ConfigFile, ConnectorSection, DEFAULT_DATA_DIR,
    LlmSection, ServerSection, StoreSection, parse_duration,
};
pub use error::{Error, Result};
pub use logging::init_logging;
pub use recovery::{RecoverySource, find_in_flight};
pub use server::Server;
pub use service::{
    Catalog, ConnectorInfo, DEFAULT_MAX_RESUMES, OnInterrupted, Service, ServiceOptions,
    ShutdownReport,
};
pub use store::open_embedded;
