//! `neonhub serve`: the service and its HTTP API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use neonhub_actors::{ConnectorsConfig, StepsBase};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::ServeArgs;
use crate::cluster::ClusterOptions;
use crate::config::{DataDir, ServeConfig, StoreConfig};
use crate::config_file::ConfigFile;
use crate::error::{Error, Result};
use crate::server::Server;
use crate::service::{Service, ServiceOptions};

/// SIGINT and SIGTERM, caught from the moment they are installed.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> Result<Self> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Error::io(format!("install the {name} handler"), e))
        };
        Ok(Self {
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

pub(super) async fn serve(
    data: DataDir,
    store: StoreConfig,
    connectors: ConnectorsConfig,
    file: ConfigFile,
    args: ServeArgs,
) -> Result<()> {
    let connectors = file.llm.apply(connectors, |name| std::env::var(name).ok());
    let listen = args
        .listen
        .or(file.server.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4000)));
    let public_url = file.server.public_url.clone();
    let steps_base = StepsBase::new();
    let mut config = ServeConfig::new(listen);
    if let Some(token) = args.token {
        config = config.with_token(token);
    }
    config.max_body_bytes = args.max_body_bytes;
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    config.body_timeout = Duration::from_secs(args.body_timeout);
    config.max_feed_clients = args.max_feed_clients;
    config.max_connections = args.max_connections;
    let store_name = store.to_string();
    let options = ServiceOptions {
        store,
        connectors,
        rate_limits: file.rate_limits_under(args.rate_limits.config()),
        max_in_flight: args.max_in_flight,
        on_interrupted: args.on_interrupted,
        max_resumes: args.max_resumes,
        cluster: ClusterOptions {
            node: args.node_id,
            lease: Duration::from_secs(args.lease_secs),
        },
        config: file,
        steps_base: steps_base.clone(),
        ..ServiceOptions::new(data)
    };
    // The signal handlers go in before anything is opened, so a signal
    // during start-up is not lost.
    let mut signals = StopSignals::install()?;
    let service = Service::start(options).await?;
    let recovered = service.recovery().interrupted.len();
    let resumed = service.recovery().resumed.len();
    let server = Server::start(&service, &config)?;
    steps_base.set(public_url.unwrap_or_else(|| format!("http://{}", server.local_addr())));
    let node = service
        .node()
        .map(|node| format!(", node {node}"))
        .unwrap_or_default();
    println!(
        "neonhub listening on http://{} (store {store_name}{node}, data in {}, auth {}, {resumed} interrupted runs resumed, {recovered} closed as interrupted)",
        server.local_addr(),
        service.data().display_path().display(),
        if config.token.is_some() { "on" } else { "off" },
    );
    let name = signals.wait().await;
    server.drain();
    let grace = Duration::from_secs(args.drain_grace);
    if name == "SIGTERM" && !grace.is_zero() {
        println!(
            "{name}: draining for {}s (new work and /readyz get 503), then shutting down; \
             a second signal skips the wait",
            grace.as_secs()
        );
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            again = signals.wait() => println!("{again}: the drain ends now"),
        }
    }
    println!("{name}: shutting down (new work gets 503, in-flight runs finish)");
    server.stop().await?;
    let report = service.shutdown(config.shutdown_timeout).await?;
    println!(
        "stopped: the AgentRun table is at position {}, {} runs still going were cut off, to resume at the next start",
        report.checkpoint,
        report.interrupted.len()
    );
    Ok(())
}
