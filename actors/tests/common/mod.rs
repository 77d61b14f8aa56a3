//! Helpers shared by the scenario tests: a real embedded log in a temp dir,
//! reading a run's events back, waiting on conditions, a local HTTP server.

#![allow(dead_code, unreachable_pub)]

pub mod http;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use neonhub_events::{
    Codec, Direction, EmbeddedLog, LogOptions, Position, ReadFrom, RecordedEvent, RunEvent, RunId,
    SharedStore,
};
use tempfile::TempDir;

/// A fresh durable embedded log in a temp dir (keep the dir alive).
pub fn store() -> (TempDir, SharedStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).expect("open the log");
    (dir, Arc::new(log))
}

/// The recorded events of one run, in stream order.
pub async fn recorded(store: &SharedStore, run_id: RunId) -> Vec<RecordedEvent> {
    store
        .read_stream(
            &run_id.stream(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await
        .expect("read the run stream")
}

/// The decoded events of one run, in stream order.
pub async fn events(store: &SharedStore, run_id: RunId) -> Vec<RunEvent> {
    let codec = Codec::new();
    recorded(store, run_id)
        .await
        .iter()
        .map(|r| codec.decode(r).expect("decode"))
        .collect()
}

/// Every event in the store, in global order.
pub async fn all(store: &SharedStore) -> Vec<RecordedEvent> {
    store
        .read_all(Position::START, usize::MAX)
        .await
        .expect("read all")
}

/// The type names of a run's events, in order, with `will_retry` spelled
/// out for failures: a compact picture of the stream to assert on.
pub fn shape(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            RunEvent::Started(s) => format!("started#{}", s.attempt),
            RunEvent::Succeeded(s) => format!("succeeded#{}", s.attempt),
            RunEvent::Failed(f) if f.will_retry => {
                format!("failed#{}({}, will retry)", f.attempt, f.error.kind)
            }
            RunEvent::Failed(f) => format!("failed#{}({})", f.attempt, f.error.kind),
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// Polls `condition` every 5 ms until it holds; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts the revisions of a stream are 0, 1, 2, ... (every append was at
/// the exact next revision) and that positions grow.
pub fn assert_contiguous(recorded: &[RecordedEvent]) {
    for (i, r) in recorded.iter().enumerate() {
        assert_eq!(r.revision.0, i as u64, "revision of event {i}");
    }
    for pair in recorded.windows(2) {
        assert!(pair[0].position < pair[1].position);
    }
}

/// An agent that makes the connector call its input describes:
/// `{"connector": .., "operation": .., "input": ..}`.
pub struct Proxy;

#[async_trait::async_trait]
impl neonhub_actors::Agent for Proxy {
    fn name(&self) -> &str {
        "proxy"
    }

    async fn run(
        &self,
        input: serde_json::Value,
        ctx: neonhub_actors::AgentContext,
    ) -> Result<serde_json::Value, neonhub_actors::AgentError> {
        let connector = input["connector"].as_str().unwrap_or_default();
        let operation = input["operation"].as_str().unwrap_or_default();
        Ok(ctx
            .call(connector, operation, input["input"].clone())
            .await?)
    }
}

/// The one child run of `parent`: its id, found in the log.
pub async fn child_runs(store: &SharedStore, parent: RunId) -> Vec<RunId> {
    let codec = Codec::new();
    let mut children = Vec::new();
    for r in all(store).await {
        if let Ok(RunEvent::Started(s)) = codec.decode(&r)
            && s.parent_run_id == Some(parent)
            && s.attempt == 1
        {
            children.push(s.run_id);
        }
    }
    children
}
