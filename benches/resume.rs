//! Resuming a run whose journal holds 100 completed steps: the time from
//! handing the unfinished run to the orchestrator (`ResumeInterrupted`) to
//! its 101st step, the first new one, reaching the connector. The 100
//! recorded steps replay from their streams on the durable embedded log.
//! Start-up's scan of the log (`find_unfinished`) is not in the figure.
//!
//! Run: `cargo bench --bench resume -- --noplot`. Temp data lives under
//! `target/neonhub-bench/` (the real disk, never committed) and is removed.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, Connector, ConnectorError, ConnectorOptions,
    OrchestratorBuilder, ResumeInterrupted, find_unfinished,
};
use neonhub_events::{
    Codec, EmbeddedLog, ExpectedRevision, LogOptions, Metadata, RunEvent, RunId, RunKind,
    RunStarted, RunSucceeded, SharedStore, Timestamp,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Completed steps in the journal before the resume.
const STEPS: u32 = 100;

fn bench_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    root
}

/// Calls `probe.step` `STEPS + 1` times.
struct Many;

#[async_trait]
impl Agent for Many {
    fn name(&self) -> &str {
        "many"
    }

    async fn run(&self, _input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        for _ in 0..=STEPS {
            ctx.call("probe", "step", json!({})).await?;
        }
        Ok(json!({}))
    }
}

/// Tells the bench when a request really reaches it.
struct Probe(Arc<Mutex<Option<oneshot::Sender<Instant>>>>);

#[async_trait]
impl Connector for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    async fn call(&self, _operation: &str, _input: &Value) -> Result<Value, ConnectorError> {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(Instant::now());
        }
        Ok(json!({"ok": true}))
    }
}

fn started(run_id: RunId, parent: Option<RunId>, key: Option<String>) -> RunEvent {
    RunEvent::Started(RunStarted {
        run_id,
        kind: if parent.is_some() {
            RunKind::Connector
        } else {
            RunKind::Agent
        },
        target: if parent.is_some() { "probe" } else { "many" }.into(),
        operation: if parent.is_some() { "step" } else { "run" }.into(),
        intent: None,
        input: json!({}),
        attempt: 1,
        parent_run_id: parent,
        correlation_id: Uuid::nil(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: key,
        resumed: false,
        node: None,
        paused_micros: 0,
    })
}

/// A log holding one agent run with `STEPS` finished steps and no outcome.
async fn interrupted_run(store: &SharedStore) {
    let codec = Codec::new();
    let encode = |e: &RunEvent| codec.encode(e, Metadata::default()).unwrap();
    let parent = RunId::new();
    let first = encode(&started(parent, None, None));
    store
        .append(&parent.stream(), ExpectedRevision::NoStream, vec![first])
        .await
        .unwrap();
    for n in 1..=STEPS {
        let key = format!("probe.step#{n}");
        let step = RunId::from_uuid(Uuid::new_v5(parent.as_uuid(), key.as_bytes()));
        let done = RunEvent::Succeeded(RunSucceeded {
            run_id: step,
            attempt: 1,
            output: json!({"ok": true}),
            duration_micros: 1,
            finished_at: Timestamp::now(),
        });
        let events = vec![
            encode(&started(step, Some(parent), Some(key))),
            encode(&done),
        ];
        store
            .append(&step.stream(), ExpectedRevision::NoStream, events)
            .await
            .unwrap();
    }
}

/// One resume: the time until the first new step reaches the connector.
async fn resume_once() -> Duration {
    let dir = TempDir::new_in(bench_root()).expect("temp dir");
    let store: SharedStore =
        Arc::new(EmbeddedLog::open(dir.path(), LogOptions::default()).expect("open log"));
    interrupted_run(&store).await;
    let (tx, rx) = oneshot::channel();
    let probe = Probe(Arc::new(Mutex::new(Some(tx))));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Many, AgentOptions::default())
        .connector(probe, ConnectorOptions::default())
        .start()
        .expect("start");
    let (_, runs) = find_unfinished(&*store, &Codec::new()).await.unwrap();
    let began = Instant::now();
    let report = orchestrator
        .send(ResumeInterrupted {
            runs,
            max_resumes: 3,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.resumed.len(), 1);
    let reached = rx.await.expect("the new step reached the connector");
    reached - began
}

fn resume(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("resume");
    group.sample_size(20);
    group.bench_function("100_completed_steps_to_the_next_new_one", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| system.block_on(resume_once()))
                .sum::<Duration>()
        });
    });
    group.finish();
}

criterion_group!(benches, resume);
criterion_main!(benches);
