//! The orchestrator actor: routes a `SubmitRun` by agent name or intent,
//! records the run (`RunStarted` durable before the agent is called), runs
//! it on the agent's supervised actor with a timeout and retries, records
//! the outcome and replies. Runs in flight are bounded.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix::prelude::*;
use neonhub_events::{Codec, Position, RunId, RunKind, RunStarted, SharedStore, Timestamp};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::agent::{
    Agent, AgentActor, AgentContext, AgentFactory, AgentOptions, Execute, panicked,
};
use crate::agents::{ContentAgent, EchoAgent, EmailAgent, SlackAgent, SmsAgent};
use crate::connector::{
    BreakerState, Connector, ConnectorActor, ConnectorOptions, ConnectorsConfig, Gmail, Runtime,
    Slack, Twilio,
};
use crate::error::{Error, Result};
use crate::journal::{RunJournal, RunOutcome};
use crate::recovery::{RecoveryReport, recover_interrupted};
use crate::subscribe::{RunEventNotice, SubscriptionHandle, subscribe};

/// The default bound on runs in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// What a run is routed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// The agent with this name.
    Agent(String),
    /// The agent that handles this intent.
    Intent(String),
}

/// Submit a run; the reply is its outcome once it has finished.
///
/// A run that ran and failed is `Ok` with a failed [`RunOutcome`]; `Err` means
/// it was not run (unknown target, overload) or could not be recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmitRun {
    /// The agent, by name or intent.
    pub target: Target,
    /// The agent's input (recorded in `RunStarted`: no credentials).
    pub input: Value,
    /// A client-chosen id: an idempotency key. A fresh UUID v7 if `None`.
    pub run_id: Option<RunId>,
    /// The root request this run belongs to; the run's own id if `None`.
    pub correlation_id: Option<Uuid>,
}

impl SubmitRun {
    /// A run of the agent named `agent`.
    pub fn agent(agent: impl Into<String>, input: Value) -> Self {
        Self {
            target: Target::Agent(agent.into()),
            input,
            run_id: None,
            correlation_id: None,
        }
    }

    /// A run of the agent that handles `intent`.
    pub fn intent(intent: impl Into<String>, input: Value) -> Self {
        Self {
            target: Target::Intent(intent.into()),
            input,
            run_id: None,
            correlation_id: None,
        }
    }

    /// Uses `run_id` (an idempotency key) instead of a fresh id.
    pub fn with_run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Joins the run to an existing piece of work.
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }
}

impl Message for SubmitRun {
    type Result = Result<RunOutcome>;
}

/// One registered agent, as [`ListAgents`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// The intents routed to it.
    pub intents: Vec<String>,
    /// How often its actor was restarted after a panic.
    pub restarts: u64,
}

/// List the registered agents.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListAgents;

impl Message for ListAgents {
    type Result = Vec<AgentInfo>;
}

/// How busy the orchestrator is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Runs accepted and not finished.
    pub in_flight: usize,
    /// The bound on runs in flight.
    pub max_in_flight: usize,
}

/// Ask for [`RuntimeStats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GetStats;

impl Message for GetStats {
    type Result = RuntimeStats;
}

/// Ask for a connector's circuit breaker state (`None`: no such connector).
#[derive(Clone, Debug)]
pub struct ConnectorHealth {
    /// The connector's name.
    pub connector: String,
}

impl Message for ConnectorHealth {
    type Result = Option<BreakerState>;
}

/// Subscribe `recipient` to every run event from `from` on: stored ones
/// first, then live ones. Dropping the returned handle ends the subscription.
pub struct SubscribeRuns {
    /// The first position delivered.
    pub from: Position,
    /// Who receives the events.
    pub recipient: Recipient<RunEventNotice>,
}

impl Message for SubscribeRuns {
    type Result = Result<SubscriptionHandle>;
}

struct AgentEntry {
    addr: Addr<AgentActor>,
    options: AgentOptions,
    intents: Vec<String>,
    restarts: Arc<AtomicU64>,
}

type Pending = Rc<RefCell<HashMap<RunId, watch::Receiver<Option<RunOutcome>>>>>;

/// The orchestrator actor. Build it with [`OrchestratorBuilder`].
pub struct Orchestrator {
    runtime: Arc<Runtime>,
    agents: HashMap<String, AgentEntry>,
    intents: HashMap<String, String>,
    max_in_flight: usize,
    in_flight: Arc<AtomicUsize>,
    pending: Pending,
}

impl Actor for Orchestrator {
    type Context = Context<Self>;
}

/// Frees a slot of the in-flight bound when the run's future ends.
struct InFlightSlot(Arc<AtomicUsize>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("neonhub_runs_in_flight").set(now as f64);
    }
}

/// Removes a client-chosen run id from the pending table and publishes its
/// outcome to resubmissions waiting for it.
struct PendingEntry {
    pending: Pending,
    run_id: RunId,
    tx: watch::Sender<Option<RunOutcome>>,
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.run_id);
    }
}

impl Orchestrator {
    fn route(&self, target: &Target) -> Result<(&AgentEntry, String, Option<String>)> {
        match target {
            Target::Agent(name) => self
                .agents
                .get(name)
                .map(|entry| (entry, name.clone(), None))
                .ok_or_else(|| Error::UnknownAgent(name.clone())),
            Target::Intent(intent) => {
                let name = self
                    .intents
                    .get(intent)
                    .ok_or_else(|| Error::UnknownIntent(intent.clone()))?;
                let entry = self
                    .agents
                    .get(name)
                    .ok_or_else(|| Error::UnknownAgent(name.clone()))?;
                Ok((entry, name.clone(), Some(intent.clone())))
            }
        }
    }

    fn take_slot(&self) -> Result<InFlightSlot> {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            });
        match taken {
            Ok(n) => {
                metrics::gauge!("neonhub_runs_in_flight").set((n + 1) as f64);
                Ok(InFlightSlot(Arc::clone(&self.in_flight)))
            }
            Err(_) => Err(Error::Overloaded {
                limit: self.max_in_flight,
            }),
        }
    }
}

/// The outcome of a run whose id was already taken: its recorded outcome
/// if it finished, else `RunInProgress`.
async fn existing_outcome(store: &SharedStore, codec: &Codec, run_id: RunId) -> Result<RunOutcome> {
    RunOutcome::from_store(store, codec, run_id)
        .await?
        .ok_or(Error::RunInProgress(run_id))
}

impl Handler<SubmitRun> for Orchestrator {
    type Result = ResponseFuture<Result<RunOutcome>>;

    fn handle(&mut self, msg: SubmitRun, _ctx: &mut Context<Self>) -> Self::Result {
        let routed = self
            .route(&msg.target)
            .and_then(|r| Ok((r, self.take_slot()?)));
        let ((entry, agent_name, intent), slot) = match routed {
            Ok(ok) => ok,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let store = self.runtime.store.clone();
        let codec = self.runtime.codec.clone();

        // A resubmission of a run this node is executing waits for its outcome.
        let mut pending_entry = None;
        if let Some(run_id) = msg.run_id {
            if let Some(mut rx) = self.pending.borrow().get(&run_id).cloned() {
                return Box::pin(async move {
                    let _slot = slot;
                    let published = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|o| o.clone());
                    match published {
                        Some(outcome) => Ok(outcome),
                        // The first submission failed to record an outcome.
                        None => existing_outcome(&store, &codec, run_id).await,
                    }
                });
            }
            let (tx, rx) = watch::channel(None);
            self.pending.borrow_mut().insert(run_id, rx);
            pending_entry = Some(PendingEntry {
                pending: Rc::clone(&self.pending),
                run_id,
                tx,
            });
        }

        let addr = entry.addr.clone();
        let options = entry.options;
        let runtime = Arc::clone(&self.runtime);
        let run_id = msg.run_id.unwrap_or_default();
        let correlation_id = msg.correlation_id.unwrap_or(*run_id.as_uuid());
        Box::pin(async move {
            let _slot = slot;
            let started = RunStarted {
                run_id,
                kind: RunKind::Agent,
                target: agent_name,
                operation: "run".to_owned(),
                intent,
                input: msg.input,
                attempt: 1,
                parent_run_id: None,
                correlation_id,
                started_at: Timestamp::now(),
            };
            let outcome = match RunJournal::start(store.clone(), codec.clone(), started).await {
                Ok(journal) => execute(journal, addr, options, runtime).await,
                Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                    existing_outcome(&store, &codec, run_id).await
                }
                Err(e) => Err(e.into()),
            };
            if let (Some(entry), Ok(outcome)) = (&pending_entry, &outcome) {
                entry.tx.send_replace(Some(outcome.clone()));
            }
            outcome
        })
    }
}

/// Runs the attempts of a started run and records its outcome.
async fn execute(
    mut journal: RunJournal,
    addr: Addr<AgentActor>,
    options: AgentOptions,
    runtime: Arc<Runtime>,
) -> Result<RunOutcome> {
    loop {
        let input = if options.retry.allows_retry_after(journal.attempt()) {
            journal.input().clone()
        } else {
            journal.take_input()
        };
        let ctx = AgentContext::new(
            journal.run_id(),
            journal.correlation_id(),
            journal.attempt(),
            Arc::clone(&runtime),
        );
        let (reply, answer) = oneshot::channel();
        let request = Execute { input, ctx, reply };
        let result = match addr.send(request).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(panicked("the agent's task ended without an answer"))),
            Err(_) => Err(panicked("the agent actor is not running")),
        };
        match result {
            Ok(output) => return journal.succeed(output).await,
            Err(e) if e.is_retryable() && options.retry.allows_retry_after(journal.attempt()) => {
                let failed = journal.failed_attempt(e.into_run_error());
                tokio::time::sleep(options.retry.backoff(journal.attempt())).await;
                journal.retry(failed).await?;
            }
            Err(e) => return journal.fail(e.into_run_error()).await,
        }
    }
}

impl Handler<ListAgents> for Orchestrator {
    type Result = MessageResult<ListAgents>;

    fn handle(&mut self, _msg: ListAgents, _ctx: &mut Context<Self>) -> Self::Result {
        let mut agents: Vec<AgentInfo> = self
            .agents
            .iter()
            .map(|(name, entry)| AgentInfo {
                name: name.clone(),
                intents: entry.intents.clone(),
                restarts: entry.restarts.load(Ordering::Relaxed),
            })
            .collect();
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        MessageResult(agents)
    }
}

impl Handler<GetStats> for Orchestrator {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(RuntimeStats {
            in_flight: self.in_flight.load(Ordering::Acquire),
            max_in_flight: self.max_in_flight,
        })
    }
}

impl Handler<ConnectorHealth> for Orchestrator {
    type Result = ResponseFuture<Option<BreakerState>>;

    fn handle(&mut self, msg: ConnectorHealth, _ctx: &mut Context<Self>) -> Self::Result {
        let runtime = Arc::clone(&self.runtime);
        Box::pin(async move { runtime.health(&msg.connector).await })
    }
}

impl Handler<SubscribeRuns> for Orchestrator {
    type Result = ResponseFuture<Result<SubscriptionHandle>>;

    fn handle(&mut self, msg: SubscribeRuns, _ctx: &mut Context<Self>) -> Self::Result {
        let runtime = Arc::clone(&self.runtime);
        Box::pin(async move {
            subscribe(
                &runtime.store,
                runtime.codec.clone(),
                msg.from,
                msg.recipient,
            )
            .await
        })
    }
}

/// Configures and starts an [`Orchestrator`] with its agents and connectors.
///
/// ```no_run
/// # async fn demo(store: neonhub_events::SharedStore) -> neonhub_actors::Result<()> {
/// use neonhub_actors::{ConnectorsConfig, OrchestratorBuilder, SubmitRun};
/// let orchestrator = OrchestratorBuilder::new(store)
///     .builtin_agents()
///     .builtin_connectors(&ConnectorsConfig::mock())?
///     .start()?;
/// let outcome = orchestrator
///     .send(SubmitRun::intent("echo", serde_json::json!({"hi": 1})))
///     .await
///     .map_err(|_| neonhub_actors::Error::Stopped)??;
/// assert_eq!(outcome.result, Ok(serde_json::json!({"hi": 1})));
/// # Ok(()) }
/// ```
pub struct OrchestratorBuilder {
    store: SharedStore,
    codec: Codec,
    agents: Vec<(AgentFactory, AgentOptions)>,
    connectors: Vec<(Arc<dyn Connector>, ConnectorOptions)>,
    max_in_flight: usize,
}

impl OrchestratorBuilder {
    /// An orchestrator recording into `store`, with no agents yet.
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            codec: Codec::new(),
            agents: Vec::new(),
            connectors: Vec::new(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Uses `codec` (with its upcasters) to read and write events.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Registers an agent; `factory` builds it at start and after each panic.
    pub fn agent<A, F>(mut self, factory: F, options: AgentOptions) -> Self
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let factory: AgentFactory = Arc::new(move || Arc::new(factory()) as Arc<dyn Agent>);
        self.agents.push((factory, options));
        self
    }

    /// Registers the built-in agents `echo`, `content`, `email`, `sms` and
    /// `slack` with default options.
    pub fn builtin_agents(self) -> Self {
        self.agent(|| EchoAgent, AgentOptions::default())
            .agent(|| ContentAgent, AgentOptions::default())
            .agent(|| EmailAgent, AgentOptions::default())
            .agent(|| SmsAgent, AgentOptions::default())
            .agent(|| SlackAgent, AgentOptions::default())
    }

    /// Registers a connector.
    pub fn connector(mut self, connector: impl Connector, options: ConnectorOptions) -> Self {
        self.connectors.push((Arc::new(connector), options));
        self
    }

    /// Registers Gmail, Slack and Twilio, mock or live as `config` says,
    /// with default options.
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced without credentials.
    pub fn builtin_connectors(self, config: &ConnectorsConfig) -> Result<Self> {
        let gmail = Gmail::from_config(config)?;
        let slack = Slack::from_config(config)?;
        let twilio = Twilio::from_config(config)?;
        Ok(self
            .connector(gmail, ConnectorOptions::default())
            .connector(slack, ConnectorOptions::default())
            .connector(twilio, ConnectorOptions::default()))
    }

    /// Bounds the runs in flight (default [`DEFAULT_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Checks the configuration before any actor starts.
    fn validate(&self) -> Result<()> {
        if self.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".to_owned()));
        }
        let mut connectors = HashSet::new();
        for (connector, _) in &self.connectors {
            if !connectors.insert(connector.name()) {
                let name = connector.name();
                return Err(Error::Config(format!("two connectors are named {name:?}")));
            }
        }
        let mut agents = HashSet::new();
        let mut intents: HashMap<String, String> = HashMap::new();
        for (factory, _) in &self.agents {
            let probe = factory();
            let name = probe.name().to_owned();
            if !agents.insert(name.clone()) {
                return Err(Error::Config(format!("two agents are named {name:?}")));
            }
            for intent in probe.intents() {
                if let Some(other) = intents.insert(intent.clone(), name.clone()) {
                    return Err(Error::Config(format!(
                        "the intent {intent:?} is claimed by both {other:?} and {name:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Closes every run a dead process left open ([`recover_interrupted`]),
    /// then starts as [`Self::start`] does: what a service calls at start-up,
    /// so that no run is accepted before recovery is done.
    ///
    /// # Errors
    /// The store's during recovery, or [`Self::start`]'s.
    pub async fn start_with_recovery(self) -> Result<(Addr<Orchestrator>, RecoveryReport)> {
        self.validate()?;
        let report = recover_interrupted(&*self.store, &self.codec).await?;
        Ok((self.start()?, report))
    }

    /// Starts the agent and connector actors and the orchestrator on the
    /// current actix arbiter.
    ///
    /// # Errors
    /// [`Error::Config`] for two agents or connectors with one name, one
    /// intent claimed by two agents, or a zero bound.
    ///
    /// # Panics
    /// Outside a running actix system (as every actor start does).
    pub fn start(self) -> Result<Addr<Orchestrator>> {
        self.validate()?;
        let mut connectors = HashMap::new();
        for (connector, options) in self.connectors {
            let name = connector.name().to_owned();
            let addr = Supervisor::start(move |_| ConnectorActor::new(connector, &options));
            let retry = options.retry;
            connectors.insert(name, crate::connector::ConnectorEntry { addr, retry });
        }
        let mut agents = HashMap::new();
        let mut intents = HashMap::new();
        for (factory, options) in self.agents {
            let probe = factory();
            let name = probe.name().to_owned();
            let agent_intents = probe.intents();
            for intent in &agent_intents {
                intents.insert(intent.clone(), name.clone());
            }
            let restarts = Arc::new(AtomicU64::new(0));
            let actor_restarts = Arc::clone(&restarts);
            let timeout = options.timeout;
            let addr =
                Supervisor::start(move |_| AgentActor::new(factory, timeout, actor_restarts));
            agents.insert(
                name,
                AgentEntry {
                    addr,
                    options,
                    intents: agent_intents,
                    restarts,
                },
            );
        }
        let runtime = Arc::new(Runtime {
            store: self.store,
            codec: self.codec,
            connectors,
        });
        Ok(Orchestrator {
            runtime,
            agents,
            intents,
            max_in_flight: self.max_in_flight,
            in_flight: Arc::new(AtomicUsize::new(0)),
            pending: Rc::default(),
        }
        .start())
    }
}
