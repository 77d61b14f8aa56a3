//! The orchestrator actor: routes a run by agent name or intent (the one
//! place a run is routed), records it (`RunStarted` durable before the agent
//! is called), runs it on the agent's supervised actor with a timeout and
//! retries, records the outcome and replies with it, the run's row
//! included. Runs in flight are bounded.
//!
//! [`messages`] holds what it answers, [`builder`] how it is started.

mod builder;
mod messages;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use neonhub_events::{Codec, RunId, RunKind, RunStarted, SharedStore, Timestamp};
use tokio::sync::{oneshot, watch};

pub use builder::OrchestratorBuilder;
pub use messages::{
    AgentInfo, ConnectorHealth, GetStats, ListAgents, RunTicket, RuntimeStats, StartRun, SubmitRun,
    SubscribeRuns, Target, WatchInFlight,
};

use crate::agent::{AgentActor, AgentContext, AgentOptions, Execute, panicked};
use crate::connector::{BreakerState, Runtime};
use crate::error::{Error, Result};
use crate::journal::{RunJournal, RunOutcome};
use crate::subscribe::{SubscriptionHandle, subscribe};

/// The default bound on runs in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

struct AgentEntry {
    addr: Addr<AgentActor>,
    options: AgentOptions,
    intents: Vec<String>,
    restarts: Arc<AtomicU64>,
}

/// How far a run this node executes has come, for resubmissions of its id.
/// The sender dropped before `Finished`: the run could not be recorded.
#[derive(Clone)]
enum Stage {
    Starting,
    Started,
    Finished(Box<RunOutcome>),
}

type Pending = Rc<RefCell<HashMap<RunId, watch::Receiver<Stage>>>>;

/// The orchestrator actor. Build it with [`OrchestratorBuilder`].
pub struct Orchestrator {
    runtime: Arc<Runtime>,
    agents: HashMap<String, AgentEntry>,
    intents: HashMap<String, String>,
    max_in_flight: usize,
    in_flight: Arc<watch::Sender<usize>>,
    pending: Pending,
}

impl Actor for Orchestrator {
    type Context = Context<Self>;
}

/// Frees a slot of the in-flight bound when the run's task ends.
struct InFlightSlot(Arc<watch::Sender<usize>>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Removes a client-chosen run id from the pending table when its run ends,
/// after publishing how far it came to resubmissions waiting for it.
struct PendingEntry {
    pending: Pending,
    run_id: RunId,
    tx: watch::Sender<Stage>,
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.run_id);
    }
}

/// Where a run's task reports: once when its `RunStarted` is durable (or it
/// was refused), once with its outcome.
struct Reply {
    started: oneshot::Sender<Result<()>>,
    outcome: oneshot::Sender<Result<RunOutcome>>,
}

/// A routed run, ready to execute on its agent.
struct Job {
    started: RunStarted,
    addr: Addr<AgentActor>,
    options: AgentOptions,
    runtime: Arc<Runtime>,
    pending: Option<PendingEntry>,
    _slot: InFlightSlot,
}

impl Orchestrator {
    fn new(
        runtime: Arc<Runtime>,
        agents: HashMap<String, AgentEntry>,
        intents: HashMap<String, String>,
        max_in_flight: usize,
    ) -> Self {
        Self {
            runtime,
            agents,
            intents,
            max_in_flight,
            in_flight: Arc::new(watch::channel(0).0),
            pending: Rc::default(),
        }
    }

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
        let max = self.max_in_flight;
        let taken = self.in_flight.send_if_modified(|n| {
            let free = *n < max;
            if free {
                *n += 1;
            }
            free
        });
        if taken {
            Ok(InFlightSlot(Arc::clone(&self.in_flight)))
        } else {
            Err(Error::Overloaded { limit: max })
        }
    }

    /// Routes `msg`, takes a slot and starts its task: a new run, or a
    /// resubmission of a run this node is executing.
    fn start_run(&mut self, msg: SubmitRun, run_id: RunId, reply: Reply) -> Result<()> {
        let (entry, agent_name, intent) = self.route(&msg.target)?;
        let (addr, options) = (entry.addr.clone(), entry.options);
        let slot = self.take_slot()?;
        let runtime = Arc::clone(&self.runtime);
        let resubmitted = msg
            .run_id
            .and_then(|id| self.pending.borrow().get(&id).cloned());
        if let Some(rx) = resubmitted {
            actix::spawn(follow_pending(rx, runtime, run_id, reply, slot));
            return Ok(());
        }
        let pending = msg.run_id.map(|run_id| {
            let (tx, rx) = watch::channel(Stage::Starting);
            self.pending.borrow_mut().insert(run_id, rx);
            PendingEntry {
                pending: Rc::clone(&self.pending),
                run_id,
                tx,
            }
        });
        let started = RunStarted {
            run_id,
            kind: RunKind::Agent,
            target: agent_name,
            operation: "run".to_owned(),
            intent,
            input: msg.input,
            attempt: 1,
            parent_run_id: None,
            correlation_id: msg.correlation_id.unwrap_or(*run_id.as_uuid()),
            started_at: Timestamp::now(),
        };
        let job = Job {
            started,
            addr,
            options,
            runtime,
            pending,
            _slot: slot,
        };
        actix::spawn(job.run(reply));
        Ok(())
    }
}

/// The outcome of a run whose id was already taken: its recorded outcome
/// if it finished, else `RunInProgress`.
async fn existing_outcome(store: &SharedStore, codec: &Codec, run_id: RunId) -> Result<RunOutcome> {
    RunOutcome::from_store(store, codec, run_id)
        .await?
        .ok_or(Error::RunInProgress(run_id))
}

impl Job {
    /// Records the start, runs the attempts, records the outcome, and
    /// reports both through `reply`.
    async fn run(self, reply: Reply) {
        let Job {
            started,
            addr,
            options,
            runtime,
            pending,
            _slot,
        } = self;
        let run_id = started.run_id;
        let (store, codec) = (&runtime.store, &runtime.codec);
        let journal = RunJournal::start(store.clone(), codec.clone(), started).await;
        let outcome = match journal {
            Ok(journal) => {
                if let Some(entry) = &pending {
                    entry.tx.send_replace(Stage::Started);
                }
                let _ = reply.started.send(Ok(()));
                execute(journal, addr, options, Arc::clone(&runtime)).await
            }
            Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                let _ = reply.started.send(Ok(()));
                existing_outcome(store, codec, run_id).await
            }
            Err(e) => {
                let _ = reply.started.send(Err(e.into()));
                return;
            }
        };
        if let (Some(entry), Ok(outcome)) = (&pending, &outcome) {
            entry
                .tx
                .send_replace(Stage::Finished(Box::new(outcome.clone())));
        }
        let _ = reply.outcome.send(outcome);
    }
}

/// A resubmission of a run id this node is executing: started once the
/// first submission's `RunStarted` is durable, then the same outcome.
async fn follow_pending(
    mut rx: watch::Receiver<Stage>,
    runtime: Arc<Runtime>,
    run_id: RunId,
    reply: Reply,
    _slot: InFlightSlot,
) {
    let (store, codec) = (&runtime.store, &runtime.codec);
    if rx
        .wait_for(|s| !matches!(s, Stage::Starting))
        .await
        .is_err()
    {
        // The first submission could not record its start: the log decides.
        let outcome = existing_outcome(store, codec, run_id).await;
        match outcome {
            Ok(outcome) => {
                let _ = reply.started.send(Ok(()));
                let _ = reply.outcome.send(Ok(outcome));
            }
            Err(e) => {
                let _ = reply.started.send(Err(e));
            }
        }
        return;
    }
    let _ = reply.started.send(Ok(()));
    let finished = rx
        .wait_for(|s| matches!(s, Stage::Finished(_)))
        .await
        .ok()
        .and_then(|s| match &*s {
            Stage::Finished(outcome) => Some(RunOutcome::clone(outcome)),
            _ => None,
        });
    let outcome = match finished {
        Some(outcome) => Ok(outcome),
        // The first submission failed to record an outcome.
        None => existing_outcome(store, codec, run_id).await,
    };
    let _ = reply.outcome.send(outcome);
}

impl Handler<StartRun> for Orchestrator {
    type Result = ResponseFuture<Result<RunTicket>>;

    fn handle(&mut self, StartRun(msg): StartRun, _ctx: &mut Context<Self>) -> Self::Result {
        let run_id = msg.run_id.unwrap_or_default();
        let (started, started_rx) = oneshot::channel();
        let (outcome, outcome_rx) = oneshot::channel();
        let reply = Reply { started, outcome };
        if let Err(e) = self.start_run(msg, run_id, reply) {
            return Box::pin(async move { Err(e) });
        }
        Box::pin(async move {
            started_rx.await.map_err(|_| Error::Stopped)??;
            Ok(RunTicket::new(run_id, outcome_rx))
        })
    }
}

impl Handler<SubmitRun> for Orchestrator {
    type Result = ResponseFuture<Result<RunOutcome>>;

    fn handle(&mut self, msg: SubmitRun, ctx: &mut Context<Self>) -> Self::Result {
        let ticket = <Self as Handler<StartRun>>::handle(self, StartRun(msg), ctx);
        Box::pin(async move { ticket.await?.outcome().await })
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
        let input = journal.input().clone();
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

impl Handler<WatchInFlight> for Orchestrator {
    type Result = MessageResult<WatchInFlight>;

    fn handle(&mut self, _msg: WatchInFlight, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.in_flight.subscribe())
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
            in_flight: *self.in_flight.borrow(),
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
