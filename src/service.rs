//! The service's life: start-up (open the store, join the other nodes on a
//! shared store, resume interrupted runs, catch the projection up, start its
//! runner and the actors) and shutdown (drain in-flight runs, cut off the
//! stragglers, let the projection reach the head, close the store).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::Addr;
use neonhub_actors::{
    AgentInfo, ConnectorMode, ConnectorsConfig, DEFAULT_MAX_IN_FLIGHT, GetStats, HttpAgent,
    InFlight, InterruptRuns, ListAgents, Orchestrator, OrchestratorBuilder, RateLimitsConfig,
    RecoveryReport, ResumeInterrupted, RunOutcome, RuntimeStats, StepsBase, SubmitRun,
    WatchInFlight, close_interrupted,
};
use neonhub_events::{Codec, EventStore, NodeId, Position, RunId, SharedStore};
use neonhub_projections::{AgentRunsProjection, ProjectionHealth, ProjectionRunner, RunMetrics};
use tokio::sync::{oneshot, watch};

use crate::cluster::{Cluster, ClusterOptions, Takeover, node_id};
use crate::config::{DataDir, StoreConfig};
use crate::config_file::ConfigFile;
use crate::error::{Error, Result};
use crate::recovery::find_in_flight;
use crate::store::{Access, Store};

/// What the service is started with.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Where the data lives.
    pub data: DataDir,
    /// Which store backs it.
    pub store: StoreConfig,
    /// Mock or live connectors, with their credentials.
    pub connectors: ConnectorsConfig,
    /// The connectors' rate limits.
    pub rate_limits: RateLimitsConfig,
    /// The bound on runs in flight (503 above it).
    pub max_in_flight: usize,
    /// What start-up does with runs a stopped process left unfinished.
    pub on_interrupted: OnInterrupted,
    /// The most times one run is resumed; past it, it is closed.
    pub max_resumes: u32,
    /// This node's id and lease, on EventStoreDB (several nodes may share
    /// it); ignored on the embedded store.
    pub cluster: ClusterOptions,
    /// The configuration file's agents: built-in ones' settings and agents
    /// served over HTTP.
    pub config: ConfigFile,
    /// Where agents served over HTTP reach this node for their steps; the
    /// server sets it once it listens.
    pub steps_base: StepsBase,
}

/// What start-up does with the runs a stopped process left unfinished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupted {
    /// Give each agent run a new attempt whose finished steps replay from
    /// the journal (steps in doubt are not resent); close the rest.
    #[default]
    Resume,
    /// Close every one as failed with `interrupted`.
    Fail,
}

/// The default of [`ServiceOptions::max_resumes`].
pub const DEFAULT_MAX_RESUMES: u32 = 3;

impl ServiceOptions {
    /// The embedded store in `data`, mock connectors, the default bound.
    pub fn new(data: DataDir) -> Self {
        Self {
            data,
            store: StoreConfig::Embedded,
            connectors: ConnectorsConfig::mock(),
            rate_limits: RateLimitsConfig::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            on_interrupted: OnInterrupted::Resume,
            max_resumes: DEFAULT_MAX_RESUMES,
            cluster: ClusterOptions::default(),
            config: ConfigFile::none(),
            steps_base: StepsBase::new(),
        }
    }
}

/// One connector, as `GET /v1/agents` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Its name (`gmail`).
    pub name: &'static str,
    /// `mock` or `live`.
    pub mode: &'static str,
}

/// The registered agents (with their intents) and connectors (with their
/// modes); fixed once the service has started. Runs are routed by the
/// orchestrator alone: this is what `GET /v1/agents` lists.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The agents, sorted by name.
    pub agents: Vec<AgentInfo>,
    /// The connectors.
    pub connectors: Vec<ConnectorInfo>,
}

fn mode_name(mode: ConnectorMode) -> &'static str {
    match mode {
        ConnectorMode::Mock => "mock",
        ConnectorMode::Live => "live",
    }
}

fn connector_catalog(config: &ConnectorsConfig) -> Vec<ConnectorInfo> {
    vec![
        ConnectorInfo {
            name: "gmail",
            mode: mode_name(config.gmail_mode()),
        },
        ConnectorInfo {
            name: "slack",
            mode: mode_name(config.slack_mode()),
        },
        ConnectorInfo {
            name: "twilio",
            mode: mode_name(config.twilio_mode()),
        },
        ConnectorInfo {
            name: "llm",
            mode: mode_name(config.mode_for(config.llm.api_key.is_some())),
        },
    ]
}

/// Waits until a projection whose checkpoints `rx` reports has applied every
/// event of `store` before `head`. A checkpoint at `head` is enough; below
/// it, the projection is also done when no event of ours is left before
/// `head` (on EventStoreDB, `head` may lie past system events that neonhub
/// never sees).
pub(crate) async fn applied_up_to(
    store: &dyn EventStore,
    rx: &mut watch::Receiver<Position>,
    head: Position,
) -> Result<Position> {
    loop {
        let checkpoint = *rx.borrow_and_update();
        if checkpoint >= head {
            return Ok(checkpoint);
        }
        let next = store.read_all(checkpoint, 1).await?;
        if next.first().is_none_or(|e| e.position >= head) {
            return Ok(checkpoint);
        }
        rx.changed()
            .await
            .map_err(|_| Error::Service("the projection runner has stopped".to_owned()))?;
    }
}

struct Runner {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<neonhub_projections::Result<()>>>,
}

impl Runner {
    fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            // Already logged and shown by /readyz; not a failure to stop.
            None | Some(Ok(Ok(()) | Err(neonhub_projections::Error::AheadOfLog { .. }))) => Ok(()),
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(_)) => Err(Error::Service("the projection runner panicked".to_owned())),
        }
    }
}

/// How long shutdown waits for the runs it cut off to stop.
const INTERRUPT_GRACE: Duration = Duration::from_secs(15);

/// What shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs still going at the deadline: cut off, their steps closed, and
    /// left unfinished in the log for the next start to resume (or close,
    /// with `--on-interrupted fail`).
    pub interrupted: Vec<RunId>,
    /// The projection's checkpoint when it stopped (the log's head).
    pub checkpoint: Position,
}

/// The running service: the store, the orchestrator with the built-in
/// agents and connectors, and the AgentRun projection following the log.
///
/// Start it inside an actix system (the actors run on its arbiter).
pub struct Service {
    data: DataDir,
    store: Store,
    shared: SharedStore,
    codec: Codec,
    orchestrator: Addr<Orchestrator>,
    metrics: RunMetrics,
    checkpoints: watch::Receiver<Position>,
    health: ProjectionHealth,
    runner: Runner,
    catalog: Arc<Catalog>,
    recovery: RecoveryReport,
    in_flight: Arc<InFlight>,
    cluster: Option<Cluster>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("data", &self.data)
            .field("checkpoint", &*self.checkpoints.borrow())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the store, resumes (or closes) the runs a dead process left
    /// unfinished, catches the AgentRun table up with the log, starts its
    /// runner on a thread of its own, and starts the actors.
    ///
    /// On EventStoreDB the node first renews its lease; start-up then takes
    /// only its own runs (by [`ClusterOptions::node`]) and runs that name no
    /// node (written before runs did); the runs of other nodes are taken
    /// over later, each once its owner's lease has expired.
    ///
    /// # Errors
    /// The store's ([`neonhub_events::Error::Locked`]: another process has the
    /// data directory), the projection's, or a bad connector configuration.
    ///
    /// # Panics
    /// Outside a running actix system.
    pub async fn start(options: ServiceOptions) -> Result<Service> {
        let store = Store::open(&options.store, &options.data, Access::Write)?;
        // The table may live outside the data directory (`[store]
        // projection`).
        let table = options.data.projection_path();
        if let Some(parent) = table.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        let shared = store.shared();
        let codec = Codec::new();
        let mut cluster = match options.store {
            StoreConfig::Embedded => None,
            StoreConfig::EventStoreDb { .. } => {
                let node = node_id(&options.data, options.cluster.node.clone())?;
                Some(Cluster::join(&shared, node, options.cluster.lease).await?)
            }
        };
        let node: Option<NodeId> = cluster.as_ref().map(|c| c.node().clone());
        let (index, _source) =
            find_in_flight(&*shared, &codec, &options.data.projection_path()).await?;
        let events_scanned = index.scanned();
        let unfinished = index.select(|run| match (&node, run.owner()) {
            (None, _) | (Some(_), None) => true,
            (Some(me), Some(owner)) => owner == me,
        });
        let mut recovery = RecoveryReport {
            events_scanned,
            ..RecoveryReport::default()
        };
        let unfinished = match options.on_interrupted {
            OnInterrupted::Resume => unfinished,
            OnInterrupted::Fail => {
                recovery.interrupted = close_interrupted(&*shared, &codec, unfinished).await?;
                Vec::new()
            }
        };
        let projection =
            AgentRunsProjection::open(options.data.projection_path())?.with_codec(codec.clone());
        let mut runner = ProjectionRunner::new(Arc::clone(&shared), projection);
        match runner.catch_up().await {
            Ok(checkpoint) => {
                tracing::info!(%checkpoint, "the AgentRun table has caught up with the log");
            }
            // Served, but not ready: the log is the record and runs go on;
            // the table waits to be rebuilt.
            Err(e @ neonhub_projections::Error::AheadOfLog { .. }) => {
                tracing::error!("{e}");
            }
            Err(e) => return Err(e.into()),
        }
        let health = runner.health();
        let metrics = runner.projection().metrics();
        let checkpoints = runner.checkpoints();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("neonhub-projection".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| neonhub_projections::Error::Io {
                        context: "start the projection runner's runtime".to_owned(),
                        source: e,
                    })?;
                let result = rt.block_on(runner.run(async {
                    let _ = stopped.await;
                }));
                if let Err(e) = &result {
                    tracing::error!("the projection runner stopped: {e}");
                }
                result
            })
            .map_err(|e| Error::io("start the projection runner thread", e))?;
        let mut builder = OrchestratorBuilder::new(Arc::clone(&shared))
            .codec(codec.clone())
            .builtin_agents_with(|name| options.config.agent_options(name));
        for agent in options.config.http_agents() {
            let http = HttpAgent::new(
                agent.name.clone(),
                agent.intents.clone(),
                agent.url.as_deref().unwrap_or_default(),
                agent.options.timeout,
                options.steps_base.clone(),
            )
            .map_err(|e| Error::Usage(format!("agent {:?}: {e}", agent.name)))?;
            builder = builder.agent(move || http.clone(), agent.options);
        }
        let orchestrator = builder
            .builtin_connectors_with(&options.connectors, &options.rate_limits, |name| {
                options.config.connector_options(name)
            })?
            .max_in_flight(options.max_in_flight)
            .node(node)
            .start()?;
        let agents = orchestrator
            .send(ListAgents)
            .await
            .map_err(|_| Error::Service("the orchestrator stopped while starting".to_owned()))?;
        let in_flight = orchestrator
            .send(WatchInFlight)
            .await
            .map_err(|_| Error::Service("the orchestrator stopped while starting".to_owned()))?;
        if !unfinished.is_empty() {
            let resumed = orchestrator
                .send(ResumeInterrupted {
                    runs: unfinished,
                    max_resumes: options.max_resumes,
                })
                .await
                .map_err(|_| {
                    Error::Service("the orchestrator stopped while resuming runs".to_owned())
                })??;
            recovery.interrupted = resumed.interrupted;
            recovery.resumed = resumed.resumed;
        }
        if !recovery.interrupted.is_empty() || !recovery.resumed.is_empty() {
            tracing::warn!(
                resumed = recovery.resumed.len(),
                closed = recovery.interrupted.len(),
                "resumed or closed the runs a stopped process left unfinished"
            );
        }
        if let Some(cluster) = &mut cluster {
            cluster.watch(Takeover {
                store: Arc::clone(&shared),
                codec: codec.clone(),
                orchestrator: orchestrator.clone(),
                index,
                on_interrupted: options.on_interrupted,
                max_resumes: options.max_resumes,
            });
        }
        let catalog = Arc::new(Catalog {
            agents,
            connectors: connector_catalog(&options.connectors),
        });
        Ok(Service {
            data: options.data,
            store,
            shared,
            codec,
            orchestrator,
            metrics,
            checkpoints,
            health,
            runner: Runner {
                stop: Some(stop),
                thread: Some(thread),
            },
            catalog,
            recovery,
            in_flight,
            cluster,
        })
    }

    /// This node's id on a shared store (`None` on the embedded store).
    pub fn node(&self) -> Option<&NodeId> {
        self.cluster.as_ref().map(Cluster::node)
    }

    /// The event store.
    pub fn store(&self) -> &SharedStore {
        &self.shared
    }

    /// The codec events are written and read with.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The orchestrator's address (send it `SubmitRun`, `SubscribeRuns`, ...).
    pub fn orchestrator(&self) -> &Addr<Orchestrator> {
        &self.orchestrator
    }

    /// Where the data lives.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// The run metrics the projection keeps.
    pub fn metrics(&self) -> &RunMetrics {
        &self.metrics
    }

    /// The projection's checkpoint after each committed batch.
    pub fn checkpoints(&self) -> watch::Receiver<Position> {
        self.checkpoints.clone()
    }

    /// The agents and connectors.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// What start-up recovery did.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Where the projection stands (following, retrying, ahead of the log,
    /// stopped) and its errors by kind.
    pub fn projection_health(&self) -> &ProjectionHealth {
        &self.health
    }

    /// Whether the projection runner is still following the log.
    pub fn projection_alive(&self) -> bool {
        self.runner.is_alive()
    }

    /// Submits a run and waits for its outcome.
    ///
    /// # Errors
    /// The orchestrator's refusal (unknown agent, overload, ...);
    /// [`neonhub_actors::Error::Stopped`] once it has stopped.
    pub async fn submit(&self, run: SubmitRun) -> Result<RunOutcome> {
        Ok(self
            .orchestrator
            .send(run)
            .await
            .map_err(|_| neonhub_actors::Error::Stopped)??)
    }

    /// Runs in flight and the bound.
    ///
    /// # Errors
    /// [`neonhub_actors::Error::Stopped`] once the orchestrator has stopped.
    pub async fn stats(&self) -> Result<RuntimeStats> {
        Ok(self
            .orchestrator
            .send(GetStats)
            .await
            .map_err(|_| neonhub_actors::Error::Stopped)?)
    }

    /// Waits until the AgentRun table has applied every event the log held
    /// when called, and returns its checkpoint.
    ///
    /// # Errors
    /// The store's, or [`Error::Service`] if the runner has stopped.
    pub async fn caught_up(&self) -> Result<Position> {
        let head = self.shared.head().await?;
        let mut rx = self.checkpoints.clone();
        applied_up_to(&*self.shared, &mut rx, head).await
    }

    /// Shuts down: waits up to `drain` for the runs in flight to finish,
    /// cuts off the ones still going ([`InterruptRuns`]: their steps record
    /// how they ended, and the runs stay unfinished for the next start to
    /// resume), lets the projection apply the whole log, stops it and
    /// closes the store. No step is left `running`.
    ///
    /// Stop accepting new runs first (the HTTP server does, on a signal).
    ///
    /// # Errors
    /// The store's or the projection's.
    pub async fn shutdown(mut self, drain: Duration) -> Result<ShutdownReport> {
        // No more runs taken over; the lease is renewed until the store closes.
        if let Some(cluster) = &mut self.cluster {
            cluster.stop_watching();
        }
        let drained = tokio::time::timeout(drain, self.in_flight.idle())
            .await
            .is_ok();
        let mut report = ShutdownReport::default();
        let in_flight = self.in_flight.get();
        if !drained && in_flight > 0 {
            tracing::warn!(
                in_flight,
                "runs still going at the shutdown deadline are cut off"
            );
            report.interrupted = self
                .orchestrator
                .send(InterruptRuns)
                .await
                .unwrap_or_default();
            // Cut-off steps end within a request's cancellation; an agent
            // that ignores its cancellation is left, unfinished.
            if tokio::time::timeout(INTERRUPT_GRACE, self.in_flight.idle())
                .await
                .is_err()
            {
                tracing::error!(
                    in_flight = self.in_flight.get(),
                    "runs did not stop within {INTERRUPT_GRACE:?} of being cut off"
                );
            }
        }
        if self.runner.is_alive() {
            let head = self.shared.head().await?;
            let mut rx = self.checkpoints.clone();
            let _ = tokio::time::timeout(
                Duration::from_secs(30).max(drain),
                applied_up_to(&*self.shared, &mut rx, head),
            )
            .await;
        }
        report.checkpoint = *self.checkpoints.borrow();
        let stopped = self.runner.stop();
        if let Some(cluster) = &mut self.cluster {
            cluster.stop();
        }
        self.store.close();
        stopped?;
        Ok(report)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.runner.stop();
    }
}
