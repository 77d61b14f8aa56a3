//! Records one run in its stream: the first `RunStarted` at `NoStream`,
//! retries as (`RunFailed{will_retry}`, `RunStarted{n+1}`) and one terminal
//! event, every later append at the exact last revision.

use std::time::Instant;

use neonhub_events::{
    Codec, Direction, EventData, ExpectedRevision, Metadata, ReadFrom, Revision, RunError,
    RunEvent, RunFailed, RunId, RunStarted, RunSucceeded, SharedStore, StreamId, Timestamp,
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
}

impl RunOutcome {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }

    /// Rebuilds a finished run's outcome from its stream, `None` if the
    /// stream has no terminal event (yet).
    pub(crate) async fn from_store(
        store: &SharedStore,
        codec: &Codec,
        run_id: RunId,
    ) -> Result<Option<RunOutcome>> {
        let events = store
            .read_stream(
                &run_id.stream(),
                Direction::Forwards,
                ReadFrom::Start,
                usize::MAX,
            )
            .await?;
        let mut correlation_id = Uuid::nil();
        for recorded in &events {
            match codec.decode(recorded)? {
                RunEvent::Started(s) => correlation_id = s.correlation_id,
                RunEvent::Succeeded(s) => {
                    return Ok(Some(RunOutcome {
                        run_id,
                        correlation_id,
                        attempts: s.attempt,
                        result: Ok(s.output),
                    }));
                }
                RunEvent::Failed(f) if !f.will_retry => {
                    return Ok(Some(RunOutcome {
                        run_id,
                        correlation_id,
                        attempts: f.attempt,
                        result: Err(f.error),
                    }));
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

/// The open stream of one run that this process is executing.
pub(crate) struct RunJournal {
    store: SharedStore,
    codec: Codec,
    stream: StreamId,
    metadata: Metadata,
    template: RunStarted,
    last: Revision,
    attempt_began: Instant,
}

impl RunJournal {
    /// Appends `started` (attempt 1) at `NoStream`. Returns the store's error
    /// untouched, so a `WrongExpectedVersion` tells the caller the id is taken.
    pub(crate) async fn start(
        store: SharedStore,
        codec: Codec,
        started: RunStarted,
    ) -> neonhub_events::Result<Self> {
        let stream = started.run_id.stream();
        let metadata = Metadata {
            correlation_id: Some(started.correlation_id),
            causation_id: started.parent_run_id.map(|p| *p.as_uuid()),
        };
        let data = codec.encode(&RunEvent::Started(started.clone()), metadata)?;
        let appended = store
            .append(&stream, ExpectedRevision::NoStream, vec![data])
            .await?;
        Ok(Self {
            store,
            codec,
            stream,
            metadata,
            template: started,
            last: appended.next_expected,
            attempt_began: Instant::now(),
        })
    }

    pub(crate) fn run_id(&self) -> RunId {
        self.template.run_id
    }

    pub(crate) fn correlation_id(&self) -> Uuid {
        self.template.correlation_id
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.template.attempt
    }

    /// The run's input, for an attempt that may be followed by another.
    pub(crate) fn input(&self) -> &Value {
        &self.template.input
    }

    /// The run's input, for the last attempt: no further `RunStarted` needs it.
    pub(crate) fn take_input(&mut self) -> Value {
        std::mem::take(&mut self.template.input)
    }

    fn elapsed_micros(&self) -> u64 {
        self.attempt_began.elapsed().as_micros() as u64
    }

    fn encode(&self, event: &RunEvent) -> Result<EventData> {
        Ok(self.codec.encode(event, self.metadata)?)
    }

    async fn append(&mut self, events: Vec<EventData>) -> Result<()> {
        let appended = self
            .store
            .append(&self.stream, ExpectedRevision::Exact(self.last), events)
            .await?;
        self.last = appended.next_expected;
        Ok(())
    }

    /// The failure of the current attempt as `RunFailed{will_retry: true}`,
    /// to be appended together with the next `RunStarted` by [`Self::retry`].
    pub(crate) fn failed_attempt(&self, error: RunError) -> RunFailed {
        RunFailed {
            run_id: self.template.run_id,
            attempt: self.template.attempt,
            error,
            will_retry: true,
            duration_micros: self.elapsed_micros(),
            finished_at: Timestamp::now(),
        }
    }

    /// Appends `failed` (an earlier [`Self::failed_attempt`]) and the next
    /// attempt's `RunStarted` in one atomic batch, so a stream that did not
    /// finish always ends with a `RunStarted`.
    pub(crate) async fn retry(&mut self, failed: RunFailed) -> Result<()> {
        let mut next = self.template.clone();
        next.attempt += 1;
        next.started_at = Timestamp::now();
        let batch = vec![
            self.encode(&RunEvent::Failed(failed))?,
            self.encode(&RunEvent::Started(next.clone()))?,
        ];
        self.append(batch).await?;
        self.template = next;
        self.attempt_began = Instant::now();
        Ok(())
    }

    /// Appends `RunSucceeded` and returns the outcome.
    pub(crate) async fn succeed(mut self, output: Value) -> Result<RunOutcome> {
        let event = RunEvent::Succeeded(RunSucceeded {
            run_id: self.template.run_id,
            attempt: self.template.attempt,
            output,
            duration_micros: self.elapsed_micros(),
            finished_at: Timestamp::now(),
        });
        let data = self.encode(&event)?;
        self.append(vec![data]).await?;
        let RunEvent::Succeeded(RunSucceeded { output, .. }) = event else {
            unreachable!("built as RunSucceeded above")
        };
        Ok(self.outcome(Ok(output)))
    }

    /// Appends the terminal `RunFailed{will_retry: false}` and returns the outcome.
    pub(crate) async fn fail(mut self, error: RunError) -> Result<RunOutcome> {
        let event = RunFailed {
            run_id: self.template.run_id,
            attempt: self.template.attempt,
            error: error.clone(),
            will_retry: false,
            duration_micros: self.elapsed_micros(),
            finished_at: Timestamp::now(),
        };
        let data = self.encode(&RunEvent::Failed(event))?;
        self.append(vec![data]).await?;
        Ok(self.outcome(Err(error)))
    }

    fn outcome(&self, result: std::result::Result<Value, RunError>) -> RunOutcome {
        RunOutcome {
            run_id: self.template.run_id,
            correlation_id: self.template.correlation_id,
            attempts: self.template.attempt,
            result,
        }
    }
}
