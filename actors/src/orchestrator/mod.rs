//! The orchestrator actor: routes a run by agent name or intent (the one
//! place a run is routed), records it (`RunStarted` durable before the agent
//! is called), runs it (in the run's own task for an agent that only
//! awaits, else on the agent's actor, on its arbiter) with a timeout and
//! retries, records the outcome and replies with it, the run's row
//! included. Runs in flight are bounded.
//!
//! [`messages`] holds what it answers, [`builder`] how it is started.

mod builder;
mod control;
mod in_flight;
mod messages;
mod resolve;
mod steps;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use neonhub_events::{Codec, RunId, RunKind, RunStarted, SharedStore, Timestamp, request_digest};
use tokio::sync::{oneshot, watch};

pub use builder::{OrchestratorBuilder, default_agent_threads};
pub use in_flight::InFlight;
pub use messages::{
    AgentInfo, CancelRun, ConnectorHealth, ConnectorInfo, GetStats, InterruptRuns, ListAgents,
    ListConnectors, ResumeInterrupted, ResumeReport, RunTicket, RuntimeStats, StartRun, SubmitRun,
    SubscribeRuns, Target, WatchInFlight,
};

pub use resolve::ResolveStep;
pub use steps::{CallStep, StepCallError};

use control::{Registered, Running};
use in_flight::InFlightSlot;

use crate::agent::{AgentContext, AgentHandle, AgentOptions};
use crate::connector::{BreakerState, Runtime};
use crate::error::{Error, Result};
use crate::journal::{Next, RunJournal, RunOutcome, read_state};
use crate::recovery::close_interrupted;
use crate::retry::wait_until;
use crate::subscribe::{SubscriptionHandle, subscribe};

/// The default bound on runs in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

struct AgentEntry {
    handle: AgentHandle,
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

/// The runs this node executes under client-chosen ids: the digest of the
/// request each was started for, and how far it has come.
type Pending = Rc<RefCell<HashMap<RunId, (String, watch::Receiver<Stage>)>>>;

/// The arbiters the agents run on; stopped when the orchestrator goes.
struct AgentThreads(Vec<Arbiter>);

impl Drop for AgentThreads {
    fn drop(&mut self) {
        for arbiter in &self.0 {
            arbiter.stop();
        }
    }
}

/// The orchestrator actor. Build it with [`OrchestratorBuilder`].
pub struct Orchestrator {
    runtime: Arc<Runtime>,
    agents: HashMap<String, AgentEntry>,
    intents: HashMap<String, String>,
    max_in_flight: usize,
    in_flight: Arc<InFlight>,
    pending: Pending,
    running: Running,
    _agent_threads: AgentThreads,
}

impl Actor for Orchestrator {
    type Context = Context<Self>;
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

/// Told once a run's `RunStarted` is durable (or the log already had the
/// run); dropped unsent when the run could not start, whose outcome then
/// says why. `None` for a submitter that only wants the outcome.
type Started = Option<oneshot::Sender<()>>;

fn tell(started: &mut Started) {
    if let Some(tx) = started.take() {
        let _ = tx.send(());
    }
}

/// What [`Orchestrator::prepare`] made of a submission.
// Moved once, into the run's future, which is as large anyway.
#[allow(clippy::large_enum_variant)]
enum Prepared {
    /// A new run, to execute.
    New(Job),
    /// A resubmission of a run id this node is executing: it follows that run.
    Follow(Follower),
}

impl Prepared {
    /// Runs it to its outcome, telling `started` on the way.
    fn outcome(self, started: Started) -> LocalBoxFuture<'static, Result<RunOutcome>> {
        match self {
            Prepared::New(job) => Box::pin(job.run(started)),
            Prepared::Follow(follower) => Box::pin(follower.follow(started)),
        }
    }
}

/// A routed run, ready to execute on its agent.
struct Job {
    started: RunStarted,
    agent: AgentHandle,
    options: AgentOptions,
    runtime: Arc<Runtime>,
    pending: Option<PendingEntry>,
    running: Running,
    _slot: InFlightSlot,
}

impl Orchestrator {
    fn new(
        runtime: Arc<Runtime>,
        agents: HashMap<String, AgentEntry>,
        intents: HashMap<String, String>,
        max_in_flight: usize,
        agent_threads: AgentThreads,
    ) -> Self {
        Self {
            runtime,
            agents,
            intents,
            max_in_flight,
            in_flight: Arc::default(),
            pending: Rc::default(),
            running: Running::default(),
            _agent_threads: agent_threads,
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
        self.in_flight
            .acquire(self.max_in_flight)
            .ok_or(Error::Overloaded {
                limit: self.max_in_flight,
            })
    }

    /// Routes `msg` and takes a slot: a new run, or a resubmission of a run
    /// this node is executing.
    fn prepare(&mut self, msg: SubmitRun) -> Result<Prepared> {
        let (entry, agent_name, intent) = self.route(&msg.target)?;
        let (agent, options) = (entry.handle.clone(), entry.options);
        // Only a client-chosen id can be resubmitted: digest its request.
        let digest = msg.run_id.map(|_| request_digest(&agent_name, &msg.input));
        let run_id = msg.run_id.unwrap_or_default();
        let resubmitted = msg
            .run_id
            .and_then(|id| self.pending.borrow().get(&id).cloned());
        if let Some((running, rx)) = resubmitted {
            if Some(&running) != digest.as_ref() {
                return Err(Error::RunIdConflict { run_id });
            }
            return Ok(Prepared::Follow(Follower {
                rx,
                runtime: Arc::clone(&self.runtime),
                run_id,
                digest,
                _slot: self.take_slot()?,
            }));
        }
        let slot = self.take_slot()?;
        let runtime = Arc::clone(&self.runtime);
        let pending = msg.run_id.zip(digest.clone()).map(|(run_id, digest)| {
            let (tx, rx) = watch::channel(Stage::Starting);
            self.pending.borrow_mut().insert(run_id, (digest, rx));
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
            request_digest: digest,
            step: None,
            resumed: false,
            node: self.runtime.node.clone(),
            paused_micros: 0,
        };
        Ok(Prepared::New(Job {
            started,
            agent,
            options,
            runtime,
            pending,
            running: self.running.clone(),
            _slot: slot,
        }))
    }
}

/// The outcome of a run whose id was already taken: `RunIdConflict` if it
/// was recorded for another request than the one digested as `digest`, its
/// recorded outcome if it finished, else `RunInProgress`.
async fn existing_outcome(
    store: &SharedStore,
    codec: &Codec,
    run_id: RunId,
    digest: Option<&str>,
) -> Result<RunOutcome> {
    let run = read_state(store, codec, run_id)
        .await?
        .ok_or(Error::RunInProgress(run_id))?;
    if digest.is_some_and(|digest| run.request_digest() != digest) {
        return Err(Error::RunIdConflict { run_id });
    }
    RunOutcome::from_state(run).ok_or(Error::RunInProgress(run_id))
}

/// Tells `started` unless `outcome` refuses the request as another one.
fn tell_unless_conflict(started: &mut Started, outcome: &Result<RunOutcome>) {
    if !matches!(outcome, Err(Error::RunIdConflict { .. })) {
        tell(started);
    }
}

impl Job {
    /// Records the start (telling `started` once it is durable), runs the
    /// attempts and records the outcome.
    // Not an `async fn`: the job is taken apart before the future is built,
    // so the future holds each part once (an `async fn` keeps its argument
    // and the parts moved out of it), and a run's boxed future stays small.
    #[allow(clippy::manual_async_fn)]
    fn run(self, mut started: Started) -> impl Future<Output = Result<RunOutcome>> {
        let Job {
            started: run_started,
            agent,
            options,
            runtime,
            pending,
            running,
            _slot,
        } = self;
        async move {
            let _slot = _slot;
            let run_id = run_started.run_id;
            let digest = run_started.request_digest.clone();
            let (store, codec) = (&runtime.store, &runtime.codec);
            let outcome = match RunJournal::start(store.clone(), codec.clone(), run_started).await {
                Ok(journal) => {
                    if let Some(entry) = &pending {
                        entry.tx.send_replace(Stage::Started);
                    }
                    tell(&mut started);
                    let control = running.register(run_id);
                    execute(journal, agent, options, Arc::clone(&runtime), control).await
                }
                Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                    let existing = existing_outcome(store, codec, run_id, digest.as_deref()).await;
                    tell_unless_conflict(&mut started, &existing);
                    existing
                }
                Err(e) => return Err(e.into()),
            };
            if let (Some(entry), Ok(outcome)) = (&pending, &outcome) {
                entry
                    .tx
                    .send_replace(Stage::Finished(Box::new(outcome.clone())));
            }
            outcome
        }
    }
}

/// A resubmission of a run id this node is executing.
struct Follower {
    rx: watch::Receiver<Stage>,
    runtime: Arc<Runtime>,
    run_id: RunId,
    digest: Option<String>,
    _slot: InFlightSlot,
}

impl Follower {
    /// Started once the first submission's `RunStarted` is durable, then
    /// the same outcome.
    async fn follow(mut self, mut started: Started) -> Result<RunOutcome> {
        let (store, codec) = (&self.runtime.store, &self.runtime.codec);
        if self
            .rx
            .wait_for(|s| !matches!(s, Stage::Starting))
            .await
            .is_err()
        {
            // The first submission could not record its start: the log decides.
            let outcome = existing_outcome(store, codec, self.run_id, self.digest.as_deref()).await;
            if outcome.is_ok() {
                tell(&mut started);
            }
            return outcome;
        }
        tell(&mut started);
        let finished = self
            .rx
            .wait_for(|s| matches!(s, Stage::Finished(_)))
            .await
            .ok()
            .and_then(|s| match &*s {
                Stage::Finished(outcome) => Some(RunOutcome::clone(outcome)),
                _ => None,
            });
        match finished {
            Some(outcome) => Ok(outcome),
            // The first submission failed to record an outcome.
            None => existing_outcome(store, codec, self.run_id, self.digest.as_deref()).await,
        }
    }
}

impl Handler<StartRun> for Orchestrator {
    type Result = ResponseFuture<Result<RunTicket>>;

    fn handle(&mut self, StartRun(msg): StartRun, _ctx: &mut Context<Self>) -> Self::Result {
        let prepared = match self.prepare(msg) {
            Ok(prepared) => prepared,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let run_id = match &prepared {
            Prepared::New(job) => job.started.run_id,
            Prepared::Follow(follower) => follower.run_id,
        };
        let (started, started_rx) = oneshot::channel();
        let (outcome, mut outcome_rx) = oneshot::channel();
        actix::spawn(async move {
            let _ = outcome.send(prepared.outcome(Some(started)).await);
        });
        Box::pin(async move {
            if started_rx.await.is_err() {
                // It ended without starting: its outcome is the refusal.
                let refused = (&mut outcome_rx).await.map_err(|_| Error::Stopped)?;
                return Err(refused.err().unwrap_or(Error::Stopped));
            }
            Ok(RunTicket::new(run_id, outcome_rx))
        })
    }
}

impl Handler<SubmitRun> for Orchestrator {
    type Result = ResponseFuture<Result<RunOutcome>>;

    fn handle(&mut self, msg: SubmitRun, _ctx: &mut Context<Self>) -> Self::Result {
        match self.prepare(msg) {
            Ok(prepared) => prepared.outcome(None),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

/// Runs the attempts of a started run and records its outcome.
// Not an `async fn`, so the future holds the journal once (see `Job::run`).
#[allow(clippy::manual_async_fn)]
fn execute(
    mut journal: RunJournal,
    agent: AgentHandle,
    options: AgentOptions,
    runtime: Arc<Runtime>,
    control: Registered,
) -> impl Future<Output = Result<RunOutcome>> {
    async move {
        let terminal = loop {
            if control.is_cancelled() {
                // Cut off before this attempt began (a resumed run waiting
                // out its backoff): the attempt does not run.
                match control.error() {
                    Some(error) => break journal.failure(error),
                    None => return Err(Error::Stopped),
                }
            }
            let input = journal.input().clone();
            let ctx = AgentContext::new(
                journal.run_id(),
                journal.correlation_id(),
                journal.attempt(),
                Arc::clone(&runtime),
                control.attempt_token(),
            );
            control.set_attempt(Some(ctx.clone()));
            let result = agent.execute(input, ctx).await;
            control.set_attempt(None);
            match result {
                Ok(output) => break journal.success(output),
                Err(_) if control.is_cancelled() => match control.error() {
                    Some(error) => break journal.failure(error),
                    None => return Err(Error::Stopped),
                },
                Err(e)
                    if e.is_retryable() && options.retry.allows_retry_after(journal.attempt()) =>
                {
                    // Recorded before the wait: a crash or a cancel during it
                    // keeps the attempt's own error in the record. (Boxed: a
                    // retry is rare, and its future would double the run's.)
                    let backoff = options.retry.backoff(journal.attempt());
                    let failed = journal.failed_attempt(e.into_run_error(), backoff);
                    Box::pin(journal.will_retry(failed)).await?;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = control.cancelled() => match control.error() {
                            // Given up while it waited: ended as that attempt.
                            Some(error) => break journal.failure(error),
                            // Stopped: the next start resumes it.
                            None => return Err(Error::Stopped),
                        },
                    }
                    Box::pin(journal.begin_attempt(Next::Retry, None)).await?;
                }
                Err(e) => break journal.failure(e.into_run_error()),
            }
        };
        journal.finish(terminal).await?;
        Ok(journal.into_outcome())
    }
}

impl Handler<ResumeInterrupted> for Orchestrator {
    type Result = ResponseFuture<Result<ResumeReport>>;

    fn handle(&mut self, msg: ResumeInterrupted, _ctx: &mut Context<Self>) -> Self::Result {
        let mut resume = Vec::new();
        let mut close = Vec::new();
        let mut steps = Vec::new();
        for run in msg.runs {
            if run.state.parent_run_id.is_some() {
                steps.push(run);
                continue;
            }
            let entry = (run.state.kind == RunKind::Agent)
                .then(|| self.agents.get(&run.state.target))
                .flatten();
            match entry {
                Some(entry) if run.resumes < msg.max_resumes => {
                    // Resumed runs count in flight (shutdown waits for them)
                    // but are not refused by the bound: they were accepted.
                    let slot = self.in_flight.acquire(usize::MAX).expect("no bound");
                    resume.push((run, entry.handle.clone(), entry.options, slot));
                }
                _ => close.push(run),
            }
        }
        // A resumed run's open steps are found again by its new attempt.
        let resumed: HashSet<RunId> = resume.iter().map(|(run, ..)| run.run_id()).collect();
        close.extend(
            steps
                .into_iter()
                .filter(|s| !s.state.parent_run_id.is_some_and(|p| resumed.contains(&p))),
        );
        let runtime = Arc::clone(&self.runtime);
        let running = self.running.clone();
        Box::pin(async move {
            let (store, codec) = (&runtime.store, &runtime.codec);
            let mut report = ResumeReport {
                interrupted: close_interrupted(&**store, codec, close).await?,
                ..ResumeReport::default()
            };
            for (run, agent, options, slot) in resume {
                let run_id = run.run_id();
                let (attempt_started_at, last_activity, waiting_to_retry) = (
                    run.attempt_started_at,
                    run.last_activity,
                    run.waiting_to_retry,
                );
                let mut journal = RunJournal::resume(
                    store.clone(),
                    codec.clone(),
                    run.state,
                    run.last,
                    run.metadata,
                );
                let node = runtime.node.clone();
                match journal
                    .resume_attempt(
                        attempt_started_at,
                        last_activity,
                        waiting_to_retry.is_some(),
                        node,
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(Error::Store(neonhub_events::Error::WrongExpectedVersion { .. })) => {
                        tracing::info!(%run_id, "run moved on before its resume; left alone");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                report.resumed.push(run_id);
                let runtime = Arc::clone(&runtime);
                let control = running.register(run_id);
                actix::spawn(async move {
                    let _slot = slot;
                    if let Some(due) = waiting_to_retry {
                        // What is left of its backoff: a crash does not
                        // shorten it (cut off meanwhile, it ends so).
                        wait_until(due, control.cancelled()).await;
                    }
                    match execute(journal, agent, options, runtime, control).await {
                        Ok(outcome) => tracing::info!(
                            %run_id,
                            succeeded = outcome.is_success(),
                            "resumed run finished"
                        ),
                        Err(e) => {
                            tracing::error!(%run_id, "resumed run could not be recorded: {e}")
                        }
                    }
                });
            }
            Ok(report)
        })
    }
}

impl Handler<CancelRun> for Orchestrator {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: CancelRun, _ctx: &mut Context<Self>) -> Self::Result {
        let run_id = msg.run_id;
        if self.running.cancel(run_id, msg.reason) {
            return Box::pin(async { Ok(()) });
        }
        // Not executing here: the log says whether it exists and how it ended.
        let runtime = Arc::clone(&self.runtime);
        Box::pin(async move {
            let run = read_state(&runtime.store, &runtime.codec, run_id)
                .await?
                .ok_or(Error::UnknownRun(run_id))?;
            Err(if run.is_finished() {
                Error::RunFinished {
                    run_id,
                    status: run.status,
                }
            } else {
                Error::RunInProgress(run_id)
            })
        })
    }
}

impl Handler<InterruptRuns> for Orchestrator {
    type Result = MessageResult<InterruptRuns>;

    fn handle(&mut self, _msg: InterruptRuns, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.running.interrupt_all())
    }
}

impl Handler<WatchInFlight> for Orchestrator {
    type Result = MessageResult<WatchInFlight>;

    fn handle(&mut self, _msg: WatchInFlight, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Arc::clone(&self.in_flight))
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
            in_flight: self.in_flight.get(),
            max_in_flight: self.max_in_flight,
        })
    }
}

impl Handler<ListConnectors> for Orchestrator {
    type Result = MessageResult<ListConnectors>;

    fn handle(&mut self, _msg: ListConnectors, _ctx: &mut Context<Self>) -> Self::Result {
        let connectors = self.runtime.restarts().into_iter();
        MessageResult(
            connectors
                .map(|(name, restarts)| ConnectorInfo { name, restarts })
                .collect(),
        )
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
