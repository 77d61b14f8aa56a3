//! Records one run in its stream: the first `RunStarted` at `NoStream`,
//! retries as (`RunFailed{will_retry}`, `RunStarted{n+1}`) and one terminal
//! event, every later append at the exact last revision; each appended
//! event is folded into the run's [`RunState`] once it is durable. A retry
//! appends the failure before its wait ([`RunJournal::will_retry`]) and the
//! next `RunStarted` after it ([`RunJournal::begin_attempt`]; a step's once
//! its request is about to leave), so a run that stopped between the two
//! keeps its failed attempt's own error, and a step that did is known to
//! have had no effect.

use std::time::{Duration, Instant};

use neonhub_events::{
    Codec, Direction, ErrorKind, EventData, ExpectedRevision, Metadata, NodeId, ReadFrom,
    RecordedEvent, Revision, RunError, RunEvent, RunFailed, RunId, RunStarted, RunState,
    RunSucceeded, SharedStore, StreamId, Timestamp,
};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;

/// How a run ended, as its caller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// The run.
    pub run_id: RunId,
    /// The root request the run belongs to.
    pub correlation_id: Uuid,
    /// How many attempts were made (1 without retries).
    pub attempts: u32,
    /// The output, or the typed error of the last attempt.
    pub result: std::result::Result<Value, RunError>,
    /// The run as the AgentRun table will hold it (status, times, positions,
    /// ...): the fold of the events this outcome was read from or appended.
    /// `run_id`, `correlation_id`, `attempts` and `result` are views of it.
    pub run: RunState,
}

impl RunOutcome {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }

    /// The outcome of a finished run's state; `None` while it is running.
    pub fn from_state(run: RunState) -> Option<RunOutcome> {
        let result = match run.result()? {
            Ok(output) => Ok(output.clone()),
            Err(error) => Err(error.clone()),
        };
        Some(RunOutcome {
            run_id: run.run_id,
            correlation_id: run.correlation_id,
            attempts: run.attempts,
            result,
            run,
        })
    }
}

/// Every recorded event of run `run_id`, in stream order (none if it never
/// started).
pub(crate) async fn read_run(
    store: &SharedStore,
    run_id: RunId,
) -> neonhub_events::Result<Vec<RecordedEvent>> {
    store
        .read_stream(
            &run_id.stream(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await
}

/// Folds run `run_id`'s stream, `None` if it has no event.
pub(crate) async fn read_state(
    store: &SharedStore,
    codec: &Codec,
    run_id: RunId,
) -> Result<Option<RunState>> {
    Ok(RunState::from_stream(
        codec,
        &read_run(store, run_id).await?,
    )?)
}

/// The journal of run `run_id` as the log holds it (to append after its
/// last event), with that last event; `None` if it never started.
pub(crate) async fn open_journal(
    store: &SharedStore,
    codec: &Codec,
    run_id: RunId,
) -> Result<Option<(RunJournal, RunEvent)>> {
    let recorded = read_run(store, run_id).await?;
    let (Some(state), Some(last)) = (RunState::from_stream(codec, &recorded)?, recorded.last())
    else {
        return Ok(None);
    };
    let journal = RunJournal::resume(
        store.clone(),
        codec.clone(),
        state,
        last.revision,
        last.metadata,
    );
    Ok(Some((journal, codec.decode(last)?)))
}

/// How a run's next attempt begins ([`RunJournal::begin_attempt`]).
pub(crate) enum Next {
    /// A retry by the process executing the run, after its failed attempt
    /// and the wait: the same execution goes on.
    Retry,
    /// A resume by `node`, which executes the run from now on: a run that
    /// ended and reopens (an operator resolved its step, a step cut off
    /// before its request left), or a step found waiting to retry. The time
    /// since `idle_since` counts as paused.
    Resume {
        node: Option<NodeId>,
        idle_since: Option<Timestamp>,
    },
}

/// The open stream of one run that this process is executing: every event
/// it appends is folded into the run's [`RunState`] as it becomes durable.
pub(crate) struct RunJournal {
    store: SharedStore,
    codec: Codec,
    stream: StreamId,
    metadata: Metadata,
    state: RunState,
    last: Revision,
    attempt_began: Instant,
    /// The node executing the current attempt, named in the `RunStarted`
    /// of a retry.
    node: Option<NodeId>,
}

impl RunJournal {
    /// Appends `started` (attempt 1) at `NoStream`. Returns the store's error
    /// untouched, so a `WrongExpectedVersion` tells the caller the id is taken.
    pub(crate) fn start(
        store: SharedStore,
        codec: Codec,
        started: RunStarted,
    ) -> impl Future<Output = neonhub_events::Result<Self>> {
        Self::begin(store, codec, started, [])
    }

    /// Records a step that ended before its request could leave (refused
    /// its rate-limit permit, cut off while it waited for it): `started`
    /// (attempt 1) and its terminal `RunFailed` with `error`, in one batch
    /// at `NoStream`, so its stream never ends open. Errors as
    /// [`Self::start`]'s.
    pub(crate) fn start_refused(
        store: SharedStore,
        codec: Codec,
        started: RunStarted,
        error: RunError,
    ) -> impl Future<Output = neonhub_events::Result<Self>> {
        let now = Timestamp::now();
        let failed = RunEvent::Failed(RunFailed {
            run_id: started.run_id,
            attempt: 1,
            error,
            will_retry: false,
            retry_at: None,
            duration_micros: now.0.saturating_sub(started.started_at.0),
            finished_at: now,
        });
        Self::begin(store, codec, started, [failed])
    }

    /// Appends `started` (attempt 1) and the events `then`, in one batch at
    /// `NoStream`, and folds them.
    // Not an `async fn`: the events are built and encoded before the
    // future, which then holds them once (an `async fn` keeps its arguments
    // too).
    #[allow(clippy::manual_async_fn)]
    fn begin<const N: usize>(
        store: SharedStore,
        codec: Codec,
        started: RunStarted,
        then: [RunEvent; N],
    ) -> impl Future<Output = neonhub_events::Result<Self>> {
        let stream = started.run_id.stream();
        let metadata = Metadata {
            correlation_id: Some(started.correlation_id),
            causation_id: started.parent_run_id.map(|p| *p.as_uuid()),
        };
        let node = started.node.clone();
        let event = RunEvent::Started(started);
        let data = std::iter::once(&event).chain(&then).try_fold(
            Vec::with_capacity(N + 1),
            |mut data, e| {
                data.push(codec.encode(e, metadata)?);
                Ok::<_, neonhub_events::Error>(data)
            },
        );
        async move {
            let appended = store
                .append(&stream, ExpectedRevision::NoStream, data?)
                .await?;
            let invalid = |position, reason| neonhub_events::Error::InvalidRun {
                stream: stream.as_str().to_owned(),
                position,
                reason,
            };
            let RunEvent::Started(started) = event else {
                unreachable!("built as RunStarted above")
            };
            let mut state = RunState::start(started, appended.first_position)
                .map_err(|reason| invalid(appended.first_position, reason))?;
            for event in then {
                // Only the batch's last position is known for a later event
                // (`then` is never more than one).
                state
                    .apply(event, appended.last_position)
                    .map_err(|reason| invalid(appended.last_position, reason))?;
            }
            Ok(Self {
                store,
                codec,
                stream,
                metadata,
                state,
                last: appended.next_expected,
                attempt_began: Instant::now(),
                node,
            })
        }
    }

    /// The journal of a run already in the store, folded into `state`,
    /// whose last event is at revision `last`: later appends go at `last`.
    pub(crate) fn resume(
        store: SharedStore,
        codec: Codec,
        state: RunState,
        last: Revision,
        metadata: Metadata,
    ) -> Self {
        Self {
            store,
            codec,
            stream: state.run_id.stream(),
            metadata,
            state,
            last,
            attempt_began: Instant::now(),
            node: None,
        }
    }

    pub(crate) fn run_id(&self) -> RunId {
        self.state.run_id
    }

    pub(crate) fn correlation_id(&self) -> Uuid {
        self.state.correlation_id
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.state.attempts
    }

    /// The run's input.
    pub(crate) fn input(&self) -> &Value {
        &self.state.input
    }

    fn elapsed_micros(&self) -> u64 {
        self.attempt_began.elapsed().as_micros() as u64
    }

    /// Appends `events` at the exact last revision, then folds them into
    /// the state with the positions the store gave them.
    async fn append<const N: usize>(&mut self, events: [RunEvent; N]) -> Result<()> {
        let data = events
            .iter()
            .map(|e| self.codec.encode(e, self.metadata))
            .collect::<neonhub_events::Result<Vec<EventData>>>()?;
        let appended = self
            .store
            .append(&self.stream, ExpectedRevision::Exact(self.last), data)
            .await?;
        self.last = appended.next_expected;
        for (i, event) in events.into_iter().enumerate() {
            // The batch is contiguous on the embedded log; elsewhere only
            // its first and last positions are known.
            let position = if i + 1 == N {
                appended.last_position
            } else {
                appended.first_position
            };
            self.state.apply(event, position).map_err(|reason| {
                neonhub_events::Error::InvalidRun {
                    stream: self.stream.as_str().to_owned(),
                    position,
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// The failure of the current attempt as `RunFailed{will_retry: true}`,
    /// for [`Self::will_retry`], its next attempt due in `retry_in`.
    pub(crate) fn failed_attempt(&self, error: RunError, retry_in: Duration) -> RunFailed {
        let now = Timestamp::now();
        let retry_in = u64::try_from(retry_in.as_micros()).unwrap_or(u64::MAX);
        RunFailed {
            run_id: self.state.run_id,
            attempt: self.state.attempts,
            error,
            will_retry: true,
            retry_at: Some(Timestamp(now.0.saturating_add(retry_in))),
            duration_micros: self.elapsed_micros(),
            finished_at: now,
        }
    }

    /// Starts the next attempt of a run a stopped process left unfinished,
    /// last heard of at `last_activity` (its latest event or its steps'):
    /// if it was `waiting_to_retry` (its failed attempt recorded), its
    /// `RunStarted{n+1, resumed}` alone; else `RunFailed{interrupted,
    /// will_retry}`, ended then, and that `RunStarted` in one batch. The
    /// time since counts as paused, not as the run's execution. `node`
    /// (this node) becomes the run's owner.
    pub(crate) async fn resume_attempt(
        &mut self,
        attempt_started_at: Timestamp,
        last_activity: Timestamp,
        waiting_to_retry: bool,
        node: Option<NodeId>,
    ) -> Result<()> {
        let idle_since = Some(last_activity);
        if waiting_to_retry {
            return self
                .begin_attempt(Next::Resume { node, idle_since }, None)
                .await;
        }
        let failed = RunFailed {
            run_id: self.state.run_id,
            attempt: self.state.attempts,
            error: RunError::new(
                ErrorKind::Interrupted,
                "the process stopped while the run was in flight; the run is resumed",
            ),
            will_retry: true,
            retry_at: None,
            duration_micros: last_activity.0.saturating_sub(attempt_started_at.0),
            finished_at: last_activity,
        };
        let now = Timestamp::now();
        let mut next = self.state.next_attempt(now);
        next.resumed = true;
        next.node = node.clone();
        next.paused_micros = now.0.saturating_sub(last_activity.0);
        self.append([RunEvent::Failed(failed), RunEvent::Started(next)])
            .await?;
        self.node = node;
        self.attempt_began = Instant::now();
        Ok(())
    }

    /// Starts the next attempt of a run that ended `in_doubt` and whose step
    /// an operator resolved: `RunStarted{n+1, resumed}` alone, after the
    /// decision ([`Self::begin_attempt`] with [`Next::Resume`], idle since
    /// the run ended). `node` (this node, which executes it) becomes the
    /// run's owner.
    pub(crate) async fn reopen(&mut self, node: Option<NodeId>) -> Result<()> {
        let idle_since = self.state.finished_at;
        self.begin_attempt(Next::Resume { node, idle_since }, None)
            .await
    }

    /// Appends the failure of the current attempt, `failed` (an earlier
    /// [`Self::failed_attempt`]), alone, before the wait for the next one
    /// (which [`Self::begin_attempt`] then starts): a crash during the wait
    /// leaves the run with its attempt's own error, to be resumed with its
    /// next attempt; a step's failure is recorded so only when its request
    /// certainly had no effect or is safe to repeat, so such a step is
    /// executed again rather than put in doubt.
    pub(crate) async fn will_retry(&mut self, failed: RunFailed) -> Result<()> {
        self.append([RunEvent::Failed(failed)]).await
    }

    /// Begins the next attempt as `next` says: its `RunStarted{n+1}`, or,
    /// when it was `refused` before its request could leave (its rate-limit
    /// permit, its attempt cut off while it waited), that `RunStarted` and
    /// its terminal `RunFailed` with the refusal, in one batch, so the
    /// stream never ends open on an attempt that sent nothing.
    pub(crate) async fn begin_attempt(
        &mut self,
        next: Next,
        refused: Option<RunError>,
    ) -> Result<()> {
        let now = Timestamp::now();
        let mut started = self.state.next_attempt(now);
        match next {
            Next::Retry => started.node = self.node.clone(),
            Next::Resume { node, idle_since } => {
                started.resumed = true;
                started.node = node.clone();
                // The time it was idle (the process down, a decision
                // awaited) is not the run's execution.
                started.paused_micros = idle_since.map_or(0, |at| now.0.saturating_sub(at.0));
                self.node = node;
            }
        }
        let Some(error) = refused else {
            self.append([RunEvent::Started(started)]).await?;
            self.attempt_began = Instant::now();
            return Ok(());
        };
        let failed = RunFailed {
            run_id: self.state.run_id,
            attempt: started.attempt,
            error,
            will_retry: false,
            retry_at: None,
            duration_micros: 0,
            finished_at: now,
        };
        self.append([RunEvent::Started(started), RunEvent::Failed(failed)])
            .await
    }

    /// Appends an operator's decision on this step, which ended `in_doubt`.
    pub(crate) async fn resolve(&mut self, resolved: neonhub_events::StepResolved) -> Result<()> {
        self.append([RunEvent::StepResolved(resolved)]).await
    }

    /// The run as the journal has folded it so far.
    pub(crate) fn state(&self) -> &RunState {
        &self.state
    }

    /// The run's `RunSucceeded` with `output`, for [`Self::finish`].
    pub(crate) fn success(&self, output: Value) -> RunEvent {
        RunEvent::Succeeded(RunSucceeded {
            run_id: self.state.run_id,
            attempt: self.state.attempts,
            output,
            duration_micros: self.elapsed_micros(),
            finished_at: Timestamp::now(),
        })
    }

    /// The run's terminal `RunFailed{will_retry: false}`, for [`Self::finish`].
    pub(crate) fn failure(&self, error: RunError) -> RunEvent {
        RunEvent::Failed(RunFailed {
            run_id: self.state.run_id,
            attempt: self.state.attempts,
            error,
            will_retry: false,
            retry_at: None,
            duration_micros: self.elapsed_micros(),
            finished_at: Timestamp::now(),
        })
    }

    /// Appends `terminal` (a [`Self::success`] or [`Self::failure`]); then
    /// [`Self::into_outcome`] gives the outcome. Borrows rather than
    /// consumes, so the caller's future holds the journal once.
    pub(crate) fn finish(&mut self, terminal: RunEvent) -> impl Future<Output = Result<()>> + '_ {
        self.append([terminal])
    }

    /// The output, once [`Self::finish`] appended a [`Self::success`]
    /// (moved out, not cloned).
    pub(crate) fn into_output(self) -> Value {
        self.state
            .output
            .expect("finish appended a RunSucceeded, whose output the state holds")
    }

    /// The outcome, once [`Self::finish`] appended the terminal event.
    pub(crate) fn into_outcome(self) -> RunOutcome {
        RunOutcome::from_state(self.state).expect("finish appended a terminal event")
    }
}
