//! The `Agent` trait users implement, its context (through which an agent
//! calls connectors as child runs), and the actor that runs it.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use async_trait::async_trait;
use futures_util::FutureExt;
use neonhub_events::{ErrorKind, RunError, RunId};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::connector::{CallError, Runtime, Step};
use crate::retry::RetryPolicy;

/// An agent: a named piece of work that handles some intents.
///
/// Attempts run as tasks on the agent's arbiter, one of a small pool shared
/// by all agents, so `run` must not block: await I/O, and move heavy
/// computation to `tokio::task::spawn_blocking`. An agent that only awaits
/// says so ([`Agent::awaits_only`]) and runs on the orchestrator's thread.
///
/// Each registered agent is supervised: a panic in [`Agent::run`] fails the
/// run with `panicked` and replaces the agent with a fresh one from its
/// factory (counted in its `restarts`); its other attempts carry on.
///
/// ```
/// use neonhub_actors::{Agent, AgentContext, AgentError};
/// use serde_json::{Value, json};
///
/// struct Greeter;
///
/// #[async_trait::async_trait]
/// impl Agent for Greeter {
///     fn name(&self) -> &str { "greeter" }
///     fn intents(&self) -> Vec<String> { vec!["greet".into()] }
///     async fn run(&self, input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
///         let who = input["name"].as_str().ok_or_else(|| AgentError::rejected("name is missing"))?;
///         Ok(json!({ "greeting": format!("hello, {who}") }))
///     }
/// }
/// ```
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The agent's name, unique in an orchestrator (`email`).
    fn name(&self) -> &str;

    /// The intents routed to this agent (`email.send`); none by default.
    fn intents(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs one attempt on `input`. Connector calls go through `ctx`.
    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError>;

    /// Whether `run` only awaits (I/O, timers, steps) and never computes for
    /// long: its attempts then run in the run's own task on the
    /// orchestrator's thread, without the two thread hops to the agent's
    /// arbiter and back. `false` by default: a user's agent that blocks
    /// stalls only the agents beside it on its arbiter, never the
    /// orchestrator.
    fn awaits_only(&self) -> bool {
        false
    }
}

/// A typed failure of an agent attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    kind: ErrorKind,
    message: String,
    retryable: bool,
}

impl AgentError {
    /// A failure of the agent's own logic (kind `agent`), not retried.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Agent,
            message: message.into(),
            retryable: false,
        }
    }

    /// A transient failure of the agent (kind `agent`) that its retry policy
    /// may try again.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::new(message)
        }
    }

    /// The input was not acceptable (kind `rejected`), not retried.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Rejected,
            ..Self::new(message)
        }
    }

    /// A failure of `kind`.
    pub fn with_kind(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
        }
    }

    /// The kind recorded in `RunFailed`.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message recorded in `RunFailed`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the retry policy may try again.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub(crate) fn into_run_error(self) -> RunError {
        RunError::new(self.kind, self.message)
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for AgentError {}

impl From<CallError> for AgentError {
    /// A failed connector call fails the agent with the call's kind
    /// (`connector`, `circuit_open`, `rate_limited`, `timeout`); the agent's
    /// own retry policy decides whether to try the whole run again.
    fn from(e: CallError) -> Self {
        Self {
            kind: e.kind(),
            message: e.message().to_owned(),
            retryable: e.is_retryable(),
        }
    }
}

/// How one agent is run: its timeout per attempt and its retry policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentOptions {
    /// The longest one attempt may take; it then fails with `timeout`.
    pub timeout: Duration,
    /// Attempts and backoff. Timeouts, panics and retryable errors are retried.
    pub retry: RetryPolicy,
    /// The most attempts of this agent running at once on this node; more
    /// wait their turn (the attempt's timeout starts when it runs). `None`:
    /// no limit but the orchestrator's runs in flight.
    pub max_concurrent: Option<std::num::NonZeroUsize>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::none(),
            max_concurrent: None,
        }
    }
}

/// What an agent attempt knows about its run, and its way to call connectors.
#[derive(Clone)]
pub struct AgentContext {
    run_id: RunId,
    correlation_id: Uuid,
    attempt: u32,
    runtime: Arc<Runtime>,
    /// Calls made so far in this attempt, per `connector.operation`: the `n`
    /// of the default step keys.
    calls: Arc<Mutex<HashMap<String, u32>>>,
    /// Cancelled when the attempt is cut off (its timeout, a panic, the
    /// run's cancellation).
    cancel: CancellationToken,
    /// The attempt's step tasks, waited for before its outcome is appended.
    steps: TaskTracker,
    /// Whether the attempt still takes steps: closed, under this lock, when
    /// its outcome is decided, so no step starts after [`Self::close_steps`].
    open: Arc<Mutex<bool>>,
    /// The attempt's secret for calling steps from outside the process
    /// (an HTTP agent's `steps_url`): valid for this attempt only.
    step_token: Uuid,
    /// When the attempt times out (set when its turn comes): its steps wait for
    /// rate limits and a vendor's `Retry-After` only until then.
    deadline: Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentContext")
            .field("run_id", &self.run_id)
            .field("correlation_id", &self.correlation_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl AgentContext {
    pub(crate) fn new(
        run_id: RunId,
        correlation_id: Uuid,
        attempt: u32,
        runtime: Arc<Runtime>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            run_id,
            correlation_id,
            attempt,
            runtime,
            calls: Arc::default(),
            cancel,
            steps: TaskTracker::new(),
            open: Arc::new(Mutex::new(true)),
            step_token: Uuid::new_v4(),
            deadline: Arc::default(),
        }
    }

    /// The secret an agent outside the process presents to call this
    /// attempt's steps (`Authorization: Bearer ...` on its `steps_url`).
    pub(crate) fn step_token(&self) -> Uuid {
        self.step_token
    }

    /// Ends the attempt's steps: no step starts after this, and the tracker
    /// is closed, so waiting on it ends with the last running step.
    pub(crate) fn close_steps(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open = false;
        self.steps.close();
    }

    /// Starts the attempt's clock: it times out `timeout` from now, and its
    /// steps (every clone's) wait for rate limits and a vendor's
    /// `Retry-After` only until then.
    fn start_clock(&self, timeout: Duration) {
        let _ = self.deadline.set(tokio::time::Instant::now() + timeout);
    }

    /// The agent run being executed.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The root request this run belongs to.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// The attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Calls `operation` of `connector` with `input` as a step of this run,
    /// keyed `<connector>.<operation>#<n>` where `n` counts this attempt's
    /// calls of that operation (1, 2, ...). Keep the order of calls the same
    /// from one attempt to the next, or name the steps with [`Self::step`].
    ///
    /// The step is a child run (its own stream, parent = this run, same
    /// correlation id) whose id is derived from this run's id and the key.
    /// Its `RunStarted` is durable before the request goes out. When a later
    /// attempt makes the same call, a finished step returns its recorded
    /// output or error without calling the connector.
    ///
    /// # Errors
    /// The step's failure, with its kind (`connector`, `circuit_open`,
    /// `rate_limited`, `timeout`, `in_doubt`), or a store failure (kind
    /// `connector`).
    pub async fn call(
        &self,
        connector: &str,
        operation: &str,
        input: Value,
    ) -> Result<Value, CallError> {
        let key = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            let n = calls.entry(format!("{connector}.{operation}")).or_insert(0);
            *n += 1;
            format!("{connector}.{operation}#{n}")
        };
        self.call_step(key, connector, operation, input).await
    }

    /// A step named `key` (unique within the run, stable across attempts):
    /// `ctx.step("notify-owner").call("slack", "post_message", input)`.
    pub fn step(&self, key: impl Into<String>) -> StepCall<'_> {
        StepCall {
            ctx: self,
            key: key.into(),
        }
    }

    async fn call_step(
        &self,
        key: String,
        connector: &str,
        operation: &str,
        input: Value,
    ) -> Result<Value, CallError> {
        let (run_id, attempt) = (self.run_id, self.attempt);
        match self.start_step(key.clone(), connector, operation, input) {
            Some(call) => call.await,
            None => Err(CallError::new(
                None,
                ErrorKind::Cancelled,
                format!("step {key:?} was not started: attempt {attempt} of run {run_id} is over"),
                false,
            )),
        }
    }

    /// Starts step `key` unless the attempt is over (`None`). The step is
    /// recorded by its own task, so it reaches its terminal event even if
    /// the caller goes away (the attempt's timeout, a panic, an HTTP agent
    /// that hangs up): a started call is never left open. It starts under
    /// the gate's lock, so none starts after [`Self::close_steps`].
    pub(crate) fn start_step(
        &self,
        key: String,
        connector: &str,
        operation: &str,
        input: Value,
    ) -> Option<impl Future<Output = Result<Value, CallError>> + Send + use<>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !*open {
            return None;
        }
        let runtime = Arc::clone(&self.runtime);
        let (connector, operation) = (connector.to_owned(), operation.to_owned());
        let (parent, correlation_id) = (self.run_id, self.correlation_id);
        let (cancel, attempt) = (self.cancel.clone(), self.attempt);
        let deadline = self.deadline.get().copied();
        // Boxed: the step's future is large, and tokio moves a spawned
        // future through several frames before it reaches its task.
        let call = self.steps.spawn(Box::pin(async move {
            let step = Step {
                connector: &connector,
                operation: &operation,
                key: &key,
                parent,
                run_id: parent.step(&key),
                correlation_id,
                cancel: &cancel,
                attempt,
                deadline,
            };
            runtime.call(step, input).await
        }));
        drop(open);
        Some(async move {
            call.await.unwrap_or_else(|e| {
                Err(CallError::new(
                    None,
                    ErrorKind::Connector,
                    format!("the connector call task failed: {e}"),
                    true,
                ))
            })
        })
    }
}

/// A named step, from [`AgentContext::step`].
#[derive(Debug)]
pub struct StepCall<'a> {
    ctx: &'a AgentContext,
    key: String,
}

impl StepCall<'_> {
    /// Calls `operation` of `connector` with `input` as this step; see
    /// [`AgentContext::call`].
    ///
    /// # Errors
    /// As [`AgentContext::call`].
    pub async fn call(
        self,
        connector: &str,
        operation: &str,
        input: Value,
    ) -> Result<Value, CallError> {
        self.ctx
            .call_step(self.key, connector, operation, input)
            .await
    }
}

/// Builds a fresh agent (at start and after each panic).
pub(crate) type AgentFactory = Arc<dyn Fn() -> Arc<dyn Agent> + Send + Sync>;

/// What one agent's attempts share, wherever they run: the current agent
/// (replaced by a fresh one after a panic), its timeout and its turns.
struct AgentShared {
    factory: AgentFactory,
    agent: Mutex<Arc<dyn Agent>>,
    restarts: Arc<AtomicU64>,
    timeout: Duration,
    /// One permit per attempt allowed to run at once, if limited.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Whether attempts run in the calling task (see [`Agent::awaits_only`]).
    inline: bool,
}

impl AgentShared {
    fn current(&self) -> Arc<dyn Agent> {
        Arc::clone(&self.agent.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the agent with a fresh one from its factory, after a panic.
    fn rebuild(&self) {
        let agent = (self.factory)();
        tracing::warn!(agent = agent.name(), "agent restarted after a panic");
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = agent;
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the orchestrator runs one agent's attempts: in its own task, for an
/// agent that only awaits ([`Agent::awaits_only`]), or else on the agent's
/// actor, on the agent's arbiter.
#[derive(Clone)]
pub(crate) struct AgentHandle {
    addr: Addr<AgentActor>,
    shared: Arc<AgentShared>,
}

impl AgentHandle {
    /// Starts the actor of the agent `factory` builds, on `arbiter`.
    pub(crate) fn start(
        factory: AgentFactory,
        options: &AgentOptions,
        restarts: Arc<AtomicU64>,
        arbiter: &ArbiterHandle,
    ) -> Self {
        let agent = factory();
        let shared = Arc::new(AgentShared {
            inline: agent.awaits_only(),
            agent: Mutex::new(agent),
            factory,
            restarts,
            timeout: options.timeout,
            slots: options
                .max_concurrent
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.get()))),
        });
        let actor_shared = Arc::clone(&shared);
        let addr = AgentActor::start_in_arbiter(arbiter, move |_| AgentActor {
            shared: actor_shared,
        });
        Self { addr, shared }
    }

    /// Runs one attempt and answers its result.
    pub(crate) async fn execute(
        &self,
        input: Value,
        ctx: AgentContext,
    ) -> Result<Value, AgentError> {
        if self.shared.inline {
            return attempt(&self.shared, input, ctx).await;
        }
        if !self.addr.connected() {
            return Err(panicked("the agent actor is not running"));
        }
        let (reply, answer) = oneshot::channel();
        // `do_send`, not `send`: the agent runs on another arbiter, and
        // `send` would wake this thread once more, for the handler's `()`,
        // on every attempt. The mailbox stays bounded: runs in flight are
        // (`max_in_flight`).
        self.addr.do_send(Execute { input, ctx, reply });
        answer
            .await
            .unwrap_or_else(|_| Err(panicked("the agent's task ended without an answer")))
    }
}

/// The actor one agent's attempts run on, on its arbiter. It is not
/// supervised: it holds no state of its own (the agent is in
/// [`AgentShared`]), and an attempt that panics rebuilds the agent from its
/// factory itself, so the actor never stops.
pub(crate) struct AgentActor {
    shared: Arc<AgentShared>,
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// Run one attempt (orchestrator -> agent actor); the result comes back on
/// `reply`.
struct Execute {
    input: Value,
    ctx: AgentContext,
    reply: oneshot::Sender<Result<Value, AgentError>>,
}

impl Message for Execute {
    type Result = ();
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

impl Handler<Execute> for AgentActor {
    type Result = ();

    /// Runs the attempt as its own task on this arbiter, so that another
    /// attempt's panic never cancels it.
    fn handle(&mut self, msg: Execute, _ctx: &mut Context<Self>) {
        let shared = Arc::clone(&self.shared);
        actix::spawn(async move {
            let result = attempt(&shared, msg.input, msg.ctx).await;
            let _ = msg.reply.send(result);
        });
    }
}

/// One attempt of the agent: its turn, its timeout, its cancellation, and
/// its steps ended before its outcome. A panic fails it and rebuilds the
/// agent from its factory.
async fn attempt(
    shared: &AgentShared,
    input: Value,
    ctx: AgentContext,
) -> Result<Value, AgentError> {
    let timeout = shared.timeout;
    // Its turn first, if the agent's attempts are limited: the timeout
    // starts when it runs. A cancellation ends the wait.
    let _permit = match &shared.slots {
        None => None,
        Some(slots) => tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.ok(),
            () = ctx.cancel.cancelled() => {
                ctx.close_steps();
                return Err(AgentError::with_kind(
                    ErrorKind::Cancelled,
                    "the run was cancelled while waiting for its turn",
                    false,
                ));
            }
        },
    };
    ctx.start_clock(timeout);
    let (cancel, steps, ended) = (ctx.cancel.clone(), ctx.steps.clone(), ctx.clone());
    let agent = shared.current();
    let run = AssertUnwindSafe(agent.run(input, ctx)).catch_unwind();
    let result = tokio::select! {
        // The run was cancelled: the attempt stops where it is.
        biased;
        () = cancel.cancelled() => Ok(Ok(Err(AgentError::with_kind(
            ErrorKind::Cancelled,
            "the run was cancelled",
            false,
        )))),
        result = tokio::time::timeout(timeout, run) => result,
    };
    // Whatever ended the attempt, its steps end first: cut off the ones
    // still running, and wait until each has recorded how it ended, so
    // nothing of this attempt follows its outcome.
    if !matches!(result, Ok(Ok(_))) {
        cancel.cancel();
    }
    ended.close_steps();
    if tokio::time::timeout(STEP_DRAIN, steps.wait())
        .await
        .is_err()
    {
        tracing::error!("an attempt's steps did not record their outcome within {STEP_DRAIN:?}");
    }
    match result {
        Err(_) => Err(AgentError::with_kind(
            ErrorKind::Timeout,
            format!("the attempt did not finish within {timeout:?}"),
            true,
        )),
        Ok(Err(payload)) => {
            // Here, before the attempt answers: the run's next attempt, and
            // whoever reads `restarts`, see the fresh agent.
            shared.rebuild();
            Err(panicked(format!(
                "the agent panicked: {}",
                panic_message(payload.as_ref())
            )))
        }
        Ok(Ok(result)) => result,
    }
}

/// How long an ended attempt waits for its cut-off steps to record how they
/// ended (one append each) before its own outcome is appended.
const STEP_DRAIN: Duration = Duration::from_secs(10);

pub(crate) fn panicked(message: impl Into<String>) -> AgentError {
    AgentError::with_kind(ErrorKind::Panicked, message, true)
}
