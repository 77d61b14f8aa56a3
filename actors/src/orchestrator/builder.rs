//! [`OrchestratorBuilder`]: registers agents and connectors, checks the
//! configuration, and starts their actors and the orchestrator.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix::prelude::*;
use neonhub_events::{Codec, NodeId, SharedStore};

use super::{AgentEntry, AgentThreads, DEFAULT_MAX_IN_FLIGHT, Orchestrator};
use crate::agent::{Agent, AgentFactory, AgentHandle, AgentOptions};
use crate::agents::{ContentAgent, EchoAgent, EmailAgent, SlackAgent, SmsAgent};
use crate::connector::{
    Connector, ConnectorActor, ConnectorEntry, ConnectorOptions, ConnectorsConfig, Gmail, Guard,
    Llm, RateLimit, RateLimitsConfig, Runtime, Slack, Twilio, vendor_limits,
};
use crate::error::{Error, Result};

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
    node: Option<NodeId>,
    agent_threads: usize,
    /// Whether the built-in `content` agent drafts with the `llm`
    /// connector: set when a live one is registered by
    /// [`Self::builtin_connectors`], read when the agent is built.
    content_drafts_with_llm: Arc<std::sync::atomic::AtomicBool>,
}

/// The default number of agent threads: one per core.
pub fn default_agent_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
            node: None,
            agent_threads: default_agent_threads(),
            content_drafts_with_llm: Arc::default(),
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

    /// The `content` agent's factory: it drafts with the `llm` connector
    /// once a live one is registered ([`Self::builtin_connectors`]), from
    /// its templates otherwise.
    fn content_agent(&self) -> impl Fn() -> ContentAgent + Send + Sync + 'static {
        let flag = Arc::clone(&self.content_drafts_with_llm);
        move || ContentAgent::new(flag.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Registers the built-in agents `echo`, `content`, `email`, `sms` and
    /// `slack` with default options.
    pub fn builtin_agents(self) -> Self {
        let content = self.content_agent();
        self.agent(|| EchoAgent, AgentOptions::default())
            .agent(content, AgentOptions::default())
            .agent(|| EmailAgent, AgentOptions::default())
            .agent(|| SmsAgent, AgentOptions::default())
            .agent(|| SlackAgent, AgentOptions::default())
    }

    /// Registers the built-in agents with the options `options` gives each
    /// (by name: `echo`, `content`, `email`, `sms`, `slack`).
    pub fn builtin_agents_with(self, options: impl Fn(&str) -> AgentOptions) -> Self {
        let content = self.content_agent();
        self.agent(|| EchoAgent, options("echo"))
            .agent(content, options("content"))
            .agent(|| EmailAgent, options("email"))
            .agent(|| SmsAgent, options("sms"))
            .agent(|| SlackAgent, options("slack"))
    }

    /// Registers a connector.
    pub fn connector(mut self, connector: impl Connector, options: ConnectorOptions) -> Self {
        self.connectors.push((Arc::new(connector), options));
        self
    }

    /// Registers Gmail, Slack, Twilio and the language model (`llm`), mock
    /// or live as `config` says,
    /// with default options and the default rate limits (the vendors'
    /// published limits when live, none when mock).
    ///
    /// # Errors
    /// [`Error::Config`] when live mode is forced without credentials.
    pub fn builtin_connectors(self, config: &ConnectorsConfig) -> Result<Self> {
        self.builtin_connectors_limited(config, &RateLimitsConfig::default())
    }

    /// [`Self::builtin_connectors`] with the rate limits `limits` sets.
    ///
    /// # Errors
    /// As [`Self::builtin_connectors`].
    pub fn builtin_connectors_limited(
        self,
        config: &ConnectorsConfig,
        limits: &RateLimitsConfig,
    ) -> Result<Self> {
        self.builtin_connectors_with(config, limits, |_| ConnectorOptions::default())
    }

    /// [`Self::builtin_connectors_limited`], each connector guarded by
    /// `options(name)` (its timeout, retries and breaker; the rate limits
    /// and `max_waiting` come from `limits`).
    ///
    /// # Errors
    /// As [`Self::builtin_connectors`].
    pub fn builtin_connectors_with(
        self,
        config: &ConnectorsConfig,
        limits: &RateLimitsConfig,
        options: impl Fn(&str) -> ConnectorOptions,
    ) -> Result<Self> {
        let gmail = Gmail::from_config(config)?;
        let slack = Slack::from_config(config)?;
        let twilio = Twilio::from_config(config)?;
        let llm = Llm::from_config(config)?;
        let options = |name: &str, (connector, per_key)| ConnectorOptions {
            rate_limit: connector,
            key_rate_limit: per_key,
            max_waiting: limits.max_waiting,
            ..options(name)
        };
        let llm_limits = vendor_limits::llm(&limits.llm, llm.is_live());
        let llm_options = ConnectorOptions {
            // A model may think for a while before it answers.
            timeout: std::time::Duration::from_secs(60),
            token_limit: config
                .llm
                .tokens_per_minute
                .map(RateLimit::per_minute_whole),
            ..options("llm", llm_limits)
        };
        self.content_drafts_with_llm
            .store(llm.is_live(), std::sync::atomic::Ordering::Relaxed);
        let gmail_limits = vendor_limits::gmail(&limits.gmail, gmail.is_live());
        let slack_limits = vendor_limits::slack(&limits.slack, slack.is_live());
        let twilio_limits = vendor_limits::twilio(&limits.twilio, twilio.is_live());
        Ok(self
            .connector(gmail, options("gmail", gmail_limits))
            .connector(slack, options("slack", slack_limits))
            .connector(twilio, options("twilio", twilio_limits))
            .connector(llm, llm_options))
    }

    /// Bounds the runs in flight (default [`DEFAULT_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Names this node in the `RunStarted` of every attempt it executes (its
    /// runs, their steps, the runs it resumes), for stores shared by several
    /// nodes. Default: none (one process owns every run).
    pub fn node(mut self, node: Option<NodeId>) -> Self {
        self.node = node;
        self
    }

    /// Runs the agents on a pool of `threads` arbiters (default: one per
    /// core, [`default_agent_threads`]), each agent on one of them, so an
    /// agent that blocks or computes stalls only the agents beside it: the
    /// orchestrator, the connectors and the timers keep their own thread.
    pub fn agent_threads(mut self, threads: usize) -> Self {
        self.agent_threads = threads;
        self
    }

    /// Checks the configuration before any actor starts.
    fn validate(&self) -> Result<()> {
        if self.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".to_owned()));
        }
        if self.agent_threads == 0 {
            return Err(Error::Config("agent_threads must be at least 1".to_owned()));
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

    /// Starts the connector actors and the orchestrator on the current actix
    /// arbiter, and the agent actors on their pool of arbiters (stopped with
    /// the orchestrator).
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
            let probe = Arc::clone(&connector);
            let guard = Arc::new(Guard::new(connector, &options));
            let restarts = Arc::new(AtomicU64::new(0));
            let actor_restarts = Arc::clone(&restarts);
            let actor_guard = Arc::clone(&guard);
            let addr = Supervisor::start(move |_| ConnectorActor::new(actor_guard, actor_restarts));
            let (retry, timeout) = (options.retry, options.timeout);
            connectors.insert(
                name,
                ConnectorEntry {
                    addr,
                    guard,
                    retry,
                    timeout,
                    connector: probe,
                    restarts,
                },
            );
        }
        let pool: Vec<Arbiter> = (0..self.agent_threads.min(self.agents.len().max(1)))
            .map(|_| Arbiter::new())
            .collect();
        let mut agents = HashMap::new();
        let mut intents = HashMap::new();
        for (i, (factory, options)) in self.agents.into_iter().enumerate() {
            let probe = factory();
            let name = probe.name().to_owned();
            let agent_intents = probe.intents();
            for intent in &agent_intents {
                intents.insert(intent.clone(), name.clone());
            }
            let restarts = Arc::new(AtomicU64::new(0));
            let actor_restarts = Arc::clone(&restarts);
            let arbiter = pool[i % pool.len()].handle();
            let handle = AgentHandle::start(factory, &options, actor_restarts, &arbiter);
            agents.insert(
                name,
                AgentEntry {
                    handle,
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
            node: self.node,
        });
        Ok(Orchestrator::new(
            runtime,
            agents,
            intents,
            self.max_in_flight,
            AgentThreads(pool),
        )
        .start())
    }
}
