//! End-to-end agent runs per second through the orchestrator on the durable
//! embedded log, with the `echo` agent, at 1, 64 and 1024 runs in flight;
//! with the `email` agent, whose run makes one step (a mock Gmail send, its
//! own child run: twice the appends), in the same run; with `bare_step`,
//! one step on a connector that does nothing (the floor of any one-step
//! run: the step's journal without vendor or agent work); and
//! next to a raw actix request/response baseline (same actor hops, no log)
//! and one `fdatasync`'s latency on the same disk, all in one run; then
//! p50/p99 run latency for each level; then, at 64 and 1024 in flight, the
//! CPU time each thread spends per run (`this thread` runs the orchestrator,
//! the agents that only await and the connectors): once that thread is busy,
//! its CPU per run sets the throughput.
//!
//! It allocates with mimalloc, as the `neonhub` binary does (with glibc's
//! allocator every figure is lower, echo's by up to half).
//!
//! Run: `cargo bench --bench runs -- --noplot`; `NEONHUB_BENCH_IN_FLIGHT`
//! (e.g. `1,64,1024,4096`) replaces the levels. Temp data lives under
//! `target/neonhub-bench/` (the real disk, never committed) and is removed.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, Connector, ConnectorError, ConnectorOptions,
    Gmail, Orchestrator, OrchestratorBuilder, SubmitRun,
};
use neonhub_events::{EmbeddedLog, LogOptions, SharedStore};
use serde_json::{Value, json};
use tempfile::TempDir;

// The allocator the `neonhub` binary ships with (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs kept in flight, by default; `NEONHUB_BENCH_IN_FLIGHT=1,64,1024,4096`
/// sets other levels (the CPU section takes those above 1).
const IN_FLIGHT: [usize; 3] = [1, 64, 1024];
/// Runs timed one by one for the latency percentiles, per level (at least).
const LATENCY_RUNS: usize = 2000;
/// fdatasyncs timed for the reference latency.
const SYNCS: usize = 200;

fn bench_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    root
}

/// The raw baseline: one actor answering a message, forwarded through a
/// second one, as a run goes caller -> orchestrator -> agent.
struct Leaf;

impl Actor for Leaf {
    type Context = Context<Self>;
}

struct Ping(serde_json::Value);

impl Message for Ping {
    type Result = serde_json::Value;
}

impl Handler<Ping> for Leaf {
    type Result = MessageResult<Ping>;

    fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.0)
    }
}

struct Relay(Addr<Leaf>);

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<Ping> for Relay {
    type Result = ResponseFuture<serde_json::Value>;

    fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> Self::Result {
        let leaf = self.0.clone();
        Box::pin(async move { leaf.send(msg).await.expect("leaf") })
    }
}

/// A connector that does nothing: its one operation answers `{}` at once.
/// A run of [`BareStepAgent`] is the floor of any one-step run: the step's
/// journal (a child run, two durable events) with no vendor and no agent
/// work around it.
struct Bare;

#[async_trait::async_trait]
impl Connector for Bare {
    fn name(&self) -> &str {
        "bare"
    }

    async fn call(&self, _operation: &str, _input: &Value) -> Result<Value, ConnectorError> {
        Ok(json!({}))
    }

    fn is_safe_to_repeat(&self, _operation: &str) -> bool {
        true
    }
}

/// Intent `bare.step`: one step on [`Bare`], its input passed through.
struct BareStepAgent;

#[async_trait::async_trait]
impl Agent for BareStepAgent {
    fn name(&self) -> &str {
        "bare-step"
    }

    fn intents(&self) -> Vec<String> {
        vec!["bare.step".to_owned()]
    }

    fn awaits_only(&self) -> bool {
        true
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        Ok(ctx.call("bare", "touch", input).await?)
    }
}

#[derive(Clone)]
enum Target {
    Runs(Addr<Orchestrator>),
    OneStep(Addr<Orchestrator>),
    BareStep(Addr<Orchestrator>),
    Baseline(Addr<Relay>),
}

impl Target {
    async fn one(&self, n: u64) {
        let input = json!({ "n": n });
        match self {
            Target::Runs(addr) => {
                let outcome = addr
                    .send(SubmitRun::intent("echo", input))
                    .await
                    .expect("orchestrator")
                    .expect("run");
                assert!(outcome.is_success());
            }
            Target::OneStep(addr) => {
                let email =
                    json!({"to": "a@example.com", "subject": "s", "body": format!("n {n}")});
                let outcome = addr
                    .send(SubmitRun::intent("email.send", email))
                    .await
                    .expect("orchestrator")
                    .expect("run");
                assert!(outcome.is_success(), "{:?}", outcome.result);
            }
            Target::BareStep(addr) => {
                let outcome = addr
                    .send(SubmitRun::intent("bare.step", input))
                    .await
                    .expect("orchestrator")
                    .expect("run");
                assert!(outcome.is_success(), "{:?}", outcome.result);
            }
            Target::Baseline(addr) => {
                addr.send(Ping(input)).await.expect("relay");
            }
        }
    }
}

/// Runs `total` requests with `in_flight` workers; returns the elapsed time
/// and, if asked, each request's latency.
async fn drive(
    target: &Target,
    total: u64,
    in_flight: usize,
    latencies: bool,
) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let target = target.clone();
            let next = Arc::clone(&next);
            actix::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return seen;
                    }
                    let t = Instant::now();
                    target.one(n).await;
                    if latencies {
                        seen.push(t.elapsed());
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    (start.elapsed(), all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn fdatasync_latency(dir: &Path) -> Duration {
    let mut file = File::create(dir.join("sync-probe")).expect("probe file");
    let mut times: Vec<Duration> = (0..SYNCS)
        .map(|i| {
            file.write_all(&[i as u8; 64]).expect("write");
            let t = Instant::now();
            file.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 0.5)
}

/// CPU time each of this process's threads has used so far, by thread name
/// (`/proc/self/task/*/schedstat`, nanoseconds; empty off Linux). Threads
/// sharing a name are summed; the calling thread is named `this thread`.
fn cpu_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()));
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        let name = if Some(task.file_name()) == me {
            "this thread".to_owned()
        } else {
            std::fs::read_to_string(path.join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default()
        };
        *by_name.entry(name).or_insert(0) += ns;
    }
    by_name
}

/// Drives `total` runs of `target` at `in_flight` and prints the CPU each
/// thread spent per run: what bounds throughput once one thread is busy.
fn cpu_per_run(system: &SystemRunner, name: &str, target: &Target, in_flight: usize, total: u64) {
    let before = cpu_by_thread();
    let (elapsed, _) = system.block_on(drive(target, total, in_flight, false));
    let after = cpu_by_thread();
    let mut line = format!(
        "{name:>15} in flight {in_flight:>5}: {:>8.0} runs/s; CPU per run:",
        total as f64 / elapsed.as_secs_f64()
    );
    let mut sum = 0.0;
    for (thread, ns) in &after {
        let used = ns.saturating_sub(before.get(thread).copied().unwrap_or(0));
        let per_run = used as f64 / total as f64 / 1000.0;
        sum += per_run;
        if per_run >= 0.05 {
            line.push_str(&format!(
                " {thread} {per_run:.2} µs ({:.0}% busy);",
                100.0 * used as f64 / elapsed.as_nanos() as f64
            ));
        }
    }
    println!("{line} all threads {sum:.2} µs");
}

fn runs(c: &mut Criterion) {
    let dir = TempDir::new_in(bench_root()).expect("temp dir");
    let sync = fdatasync_latency(dir.path());
    let store: SharedStore = Arc::new(
        EmbeddedLog::open(dir.path().join("log"), LogOptions::default()).expect("open log"),
    );
    let system = System::new();
    let (orchestrator, relay) = system.block_on(async {
        // The mock Gmail without a rate limit (the default): the bench
        // measures the journal, not the limiter.
        let unlimited = ConnectorOptions::default();
        // `NEONHUB_BENCH_AGENT_THREADS` sets the agent arbiters (default:
        // one per core), to weigh the pool's thread hops.
        let agent_threads = std::env::var("NEONHUB_BENCH_AGENT_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(neonhub_actors::default_agent_threads);
        let orchestrator = OrchestratorBuilder::new(store.clone())
            .builtin_agents()
            .connector(Gmail::mock(), unlimited.clone())
            .connector(Bare, unlimited)
            .agent(|| BareStepAgent, AgentOptions::default())
            .agent_threads(agent_threads)
            .start()
            .expect("start");
        let relay = Relay(Leaf.start()).start();
        (orchestrator, relay)
    });
    let targets = [
        ("echo_durable", Target::Runs(orchestrator.clone())),
        ("email_one_step", Target::OneStep(orchestrator.clone())),
        ("bare_step", Target::BareStep(orchestrator)),
        ("actix_baseline", Target::Baseline(relay)),
    ];

    // `NEONHUB_BENCH_COUNT=echo_durable:25000`: only that many runs of that
    // target at 1024 in flight, then exit; `benches/instructions.sh` counts
    // their instructions under callgrind.
    if let Ok(count) = std::env::var("NEONHUB_BENCH_COUNT") {
        let (name, total) = count
            .split_once(':')
            .and_then(|(name, n)| Some((name, n.parse::<u64>().ok()?)))
            .expect("NEONHUB_BENCH_COUNT is TARGET:RUNS, e.g. email_one_step:25000");
        let (_, target) = targets.iter().find(|(n, _)| *n == name).expect(
            "NEONHUB_BENCH_COUNT names echo_durable, email_one_step, bare_step or actix_baseline",
        );
        let (elapsed, _) = system.block_on(drive(target, total, 1024, false));
        println!("{name}: {total} runs in {elapsed:?}");
        return;
    }

    let levels: Vec<usize> = match std::env::var("NEONHUB_BENCH_IN_FLIGHT") {
        Ok(list) => list
            .split(',')
            .map(|n| match n.trim().parse() {
                Ok(n) if n > 0 => n,
                _ => panic!("NEONHUB_BENCH_IN_FLIGHT is a list of runs in flight, e.g. 1,64,1024,4096; got {list:?}"),
            })
            .collect(),
        Err(_) => IN_FLIGHT.to_vec(),
    };

    let mut group = c.benchmark_group("runs");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for &in_flight in &levels {
        for (name, target) in &targets {
            group.bench_with_input(BenchmarkId::new(*name, in_flight), &in_flight, |b, &n| {
                b.iter_custom(|iters| system.block_on(drive(target, iters, n, false)).0);
            });
        }
    }
    group.finish();

    // The disk is shared: time fdatasync again after the runs, so the
    // serial figure can be set beside both.
    let after = fdatasync_latency(dir.path());
    println!(
        "\nfdatasync p50 on this disk: {sync:?} before the runs, {after:?} after (two: {:?} / {:?})",
        sync * 2,
        after * 2
    );
    for &in_flight in &levels {
        for (name, target) in &targets {
            let total = LATENCY_RUNS.max(in_flight * 20) as u64;
            let (elapsed, mut latencies) = system.block_on(drive(target, total, in_flight, true));
            latencies.sort();
            println!(
                "{name:>15} in flight {in_flight:>5}: {:>10.0} runs/s  p50 {:>10.3?}  p99 {:>10.3?}  ({total} runs)",
                total as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99),
            );
        }
    }

    // Where the CPU goes, per thread (see the module's doc).
    println!();
    for &in_flight in levels.iter().filter(|&&n| n > 1) {
        for (name, target) in targets.iter().filter(|(name, _)| *name != "actix_baseline") {
            cpu_per_run(&system, name, target, in_flight, 40 * 1024);
        }
    }
}

criterion_group!(benches, runs);
criterion_main!(benches);
