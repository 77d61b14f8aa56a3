//! A data directory whose log holds runs shaped as a test says (kind,
//! target, outcome, duration, start time, parent, correlation), and whose
//! AgentRun table is built from that log, for the reporting scenarios.

use std::path::Path;
use std::sync::Arc;

use neonhub_events::{
    Durability, EmbeddedLog, ErrorKind, LogOptions, RunError, RunEvent, RunFailed, RunId, RunKind,
    RunStarted, RunSucceeded, SharedStore, Timestamp,
};
use neonhub_projections::fixture::Appender;
use neonhub_projections::{AgentRunsProjection, ProjectionRunner};
use serde_json::json;
use uuid::Uuid;

/// 2026-01-01T00:00:00Z.
pub const JAN_1: u64 = 1_767_225_600_000_000;
/// An hour, in microseconds.
pub const HOUR: u64 = 3_600_000_000;

/// One run to record.
#[derive(Clone, Debug)]
pub struct Run {
    /// Its id.
    pub run_id: RunId,
    /// Agent or connector.
    pub kind: RunKind,
    /// The agent or connector name.
    pub target: &'static str,
    /// `run` for an agent, the call for a connector.
    pub operation: &'static str,
    /// The run that made this call.
    pub parent: Option<RunId>,
    /// The request it belongs to.
    pub correlation: Uuid,
    /// Its start, in microseconds since the epoch.
    pub started_at: u64,
    /// `None`: still running.
    pub outcome: Option<Result<u64, ErrorKind>>,
}

impl Run {
    /// An agent run of `target` started at `started_at` that succeeds in
    /// `duration` microseconds, in a correlation of its own.
    pub fn agent(target: &'static str, started_at: u64, duration: u64) -> Self {
        Self {
            run_id: RunId::new(),
            kind: RunKind::Agent,
            target,
            operation: "run",
            parent: None,
            correlation: Uuid::now_v7(),
            started_at,
            outcome: Some(Ok(duration)),
        }
    }

    /// A connector call `operation` of `target` made by `parent`.
    pub fn call(parent: &Run, target: &'static str, operation: &'static str) -> Self {
        Self {
            run_id: RunId::new(),
            kind: RunKind::Connector,
            target,
            operation,
            parent: Some(parent.run_id),
            correlation: parent.correlation,
            started_at: parent.started_at + 10,
            outcome: Some(Ok(1_000)),
        }
    }

    /// This run failing with `kind` (after 2 ms).
    pub fn failing(mut self, kind: ErrorKind) -> Self {
        self.outcome = Some(Err(kind));
        self
    }

    /// This run still running.
    pub fn running(mut self) -> Self {
        self.outcome = None;
        self
    }

    /// This run in the correlation `correlation`.
    pub fn in_correlation(mut self, correlation: Uuid) -> Self {
        self.correlation = correlation;
        self
    }

    fn duration(&self) -> u64 {
        match self.outcome {
            Some(Ok(d)) => d,
            _ => 2_000,
        }
    }

    /// Its events, in stream order.
    pub fn events(&self) -> Vec<RunEvent> {
        let mut events = vec![RunEvent::Started(RunStarted {
            run_id: self.run_id,
            kind: self.kind,
            target: self.target.into(),
            operation: self.operation.into(),
            intent: None,
            input: json!({"n": self.started_at % 1000}),
            attempt: 1,
            parent_run_id: self.parent,
            correlation_id: self.correlation,
            started_at: Timestamp(self.started_at),
            request_digest: None,
            step: None,
            resumed: false,
            node: None,
            paused_micros: 0,
        })];
        let finished_at = Timestamp(self.started_at + self.duration());
        match self.outcome {
            None => {}
            Some(Ok(duration_micros)) => events.push(RunEvent::Succeeded(RunSucceeded {
                run_id: self.run_id,
                attempt: 1,
                output: json!({"ok": true}),
                duration_micros,
                finished_at,
            })),
            Some(Err(kind)) => events.push(RunEvent::Failed(RunFailed {
                run_id: self.run_id,
                attempt: 1,
                error: RunError::new(kind, format!("{kind} on purpose")),
                will_retry: false,
                retry_at: None,
                duration_micros: self.duration(),
                finished_at,
            })),
        }
        events
    }
}

/// Writes `runs` to the log of data directory `data` (in this order, each
/// run's events together) and builds its AgentRun table. Blocks (on a
/// thread of its own, so an async test may call it too).
pub fn record(data: &Path, runs: &[Run]) {
    let events: Vec<RunEvent> = runs.iter().flat_map(Run::events).collect();
    std::thread::scope(|s| {
        s.spawn(|| write(data, &events)).join().unwrap();
    });
}

fn write(data: &Path, events: &[RunEvent]) {
    let runtime = crate::workload::runtime();
    runtime.block_on(async {
        let log = Arc::new(
            EmbeddedLog::open(
                data.join(neonhub::LOG_DIR),
                LogOptions::default().with_durability(Durability::Buffered),
            )
            .unwrap(),
        );
        let store: SharedStore = log.clone();
        let mut appender = Appender::new();
        for chunk in events.chunks(4096) {
            appender.append(&*store, chunk).await.unwrap();
        }
        let table = AgentRunsProjection::open(data.join(neonhub::PROJECTION_FILE)).unwrap();
        ProjectionRunner::new(store, table)
            .catch_up()
            .await
            .unwrap();
        log.close();
    });
}
