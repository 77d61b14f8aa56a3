//! Projection speed: rebuilding the AgentRun table from a 1M-event log
//! (events per second), and filtered list queries and the per-target report
//! over a table of about 1M rows (built from a 2.6M-event log).
//!
//! Run: `cargo bench --bench replay -- --noplot`. The logs and tables are
//! built once under `target/neonhub-bench/replay-1m-{events,rows}/` (the real
//! disk, never committed; a few minutes the first time) and reused; delete
//! those directories after a change of the log or table format. Besides
//! criterion's means, the rebuild prints each run's wall and CPU time, and
//! the list benchmark prints p50/p99 latencies over 1,000 queries per filter,
//! since its goal is a p99.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use neonhub_events::{
    Durability, EmbeddedLog, LogOptions, Position, RunKind, SharedStore, Timestamp,
};
use neonhub_projections::fixture::{FixtureSpec, append_in_lanes, script};
use neonhub_projections::{
    Cursor, Progress, RebuildOptions, RunFilter, RunQueries, RunStatus, rebuild,
};
use neonhub_test_support::workload;
use tokio::runtime::Runtime;

/// The size of the log.
const EVENTS: u64 = 1_000_000;

fn bench_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/neonhub-bench")
        .join(name);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    dir
}

fn remove_db(path: &Path) {
    for suffix in [
        "",
        "-wal",
        "-shm",
        ".rebuilding",
        ".rebuilding-wal",
        ".rebuilding-shm",
    ] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A log built once and kept under `target/neonhub-bench/<name>/`, with the
/// table rebuilt from it.
struct Fixture {
    name: &'static str,
    agent_runs: usize,
    /// Cut the log to exactly this many events (`None`: keep all).
    events: Option<u64>,
}

/// 1M events (about 380k rows): the rebuild benchmark.
const EVENTS_1M: Fixture = Fixture {
    name: "replay-1m-events",
    agent_runs: 172_000,
    events: Some(EVENTS),
};

/// About 1M rows (2.6M events): the list and report benchmarks.
const ROWS_1M: Fixture = Fixture {
    name: "replay-1m-rows",
    agent_runs: 455_000,
    events: None,
};

/// Opens the fixture's log, building it first if needed, and the table
/// rebuilt from it.
fn fixture(rt: &Runtime, f: &Fixture) -> (SharedStore, PathBuf) {
    let dir = bench_dir(f.name);
    let log_dir = dir.join("log");
    let table = dir.join("table.sqlite");
    let built = dir.join("BUILT");
    let open = || -> SharedStore {
        Arc::new(
            EmbeddedLog::open(
                &log_dir,
                LogOptions::default().with_durability(Durability::Buffered),
            )
            .expect("open the fixture log"),
        )
    };
    let store = if built.exists() {
        open()
    } else {
        let _ = std::fs::remove_dir_all(&log_dir);
        remove_db(&table);
        let store = open();
        let started = Instant::now();
        let mut events = script(&FixtureSpec {
            agent_runs: f.agent_runs,
            seed: 42,
            concurrency: 64,
        });
        if let Some(n) = f.events {
            assert!(
                events.len() as u64 >= n,
                "fixture too small: {}",
                events.len()
            );
            events.truncate(n as usize);
        }
        rt.block_on(append_in_lanes(&store, &events, 64))
            .expect("append the fixture");
        eprintln!(
            "built the {} log ({} events) in {:?}",
            f.name,
            events.len(),
            started.elapsed()
        );
        std::fs::write(&built, events.len().to_string()).expect("mark the fixture built");
        store
    };
    if let Some(n) = f.events {
        assert_eq!(rt.block_on(store.head()).ok(), Some(Position(n)));
    }
    if !table.exists() {
        let summary = rt
            .block_on(rebuild(
                &store,
                &table,
                RebuildOptions::default().progress(Progress::Hidden),
            ))
            .expect("rebuild the fixture table");
        eprintln!(
            "rebuilt the {} table: {} events in {:?} ({:.0} events/s)",
            f.name,
            summary.events,
            summary.elapsed,
            summary.events_per_second()
        );
    }
    (store, table)
}

/// This process's CPU time (user + system), from `/proc/self/stat`: on a
/// shared machine, wall time also counts other processes' work.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 (1-based), in clock ticks of 10 ms.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn rebuild_bench(c: &mut Criterion) {
    let rt = workload::runtime();
    let (store, _) = fixture(&rt, &EVENTS_1M);
    let target = bench_dir(EVENTS_1M.name).join("bench-rebuild.sqlite");
    let mut group = c.benchmark_group("replay/rebuild");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(BenchmarkId::new("agent_runs", "1M events"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                remove_db(&target);
                let cpu = cpu_time();
                let summary = rt
                    .block_on(rebuild(
                        &store,
                        &target,
                        RebuildOptions::default().progress(Progress::Hidden),
                    ))
                    .expect("rebuild");
                assert_eq!(summary.events, EVENTS);
                eprintln!(
                    "rebuild: {:?} wall ({:.0} events/s), {:?} CPU",
                    summary.elapsed,
                    summary.events_per_second(),
                    cpu_time() - cpu
                );
                total += summary.elapsed;
            }
            total
        })
    });
    group.finish();
    remove_db(&target);
}

/// The list filters measured, by name.
fn filters(q: &RunQueries) -> Vec<(&'static str, RunFilter)> {
    let newest = q.list(&RunFilter::new(), None, 1).expect("list").runs[0].clone();
    let all = q.all_runs().expect("rows");
    let oldest = all.iter().map(|r| r.started_at.0).min().expect("rows");
    drop(all);
    // The middle tenth of the time the runs span.
    let span = newest.started_at.0 - oldest;
    let window = (
        Some(Timestamp(oldest + span * 45 / 100)),
        Some(Timestamp(oldest + span * 55 / 100)),
    );
    vec![
        ("all", RunFilter::new()),
        ("target", RunFilter::new().target("email")),
        (
            "target+status",
            RunFilter::new().target("gmail").status(RunStatus::Failed),
        ),
        (
            "kind+status+time",
            RunFilter::new()
                .kind(RunKind::Agent)
                .status(RunStatus::Running)
                .started_between(window.0, window.1),
        ),
        ("intent", RunFilter::new().intent("support.triage")),
        (
            "correlation",
            RunFilter::new().correlation_id(newest.correlation_id),
        ),
        (
            "target+time",
            RunFilter::new()
                .target("slack")
                .started_between(window.0, window.1),
        ),
    ]
}

fn list_bench(c: &mut Criterion) {
    let rt = workload::runtime();
    let (_, table) = fixture(&rt, &ROWS_1M);
    let q = RunQueries::open(&table).expect("open the table");
    let filters = filters(&q);
    let mut group = c.benchmark_group("replay/list");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    for (name, filter) in &filters {
        // A page deep in the list: the cursor of the 10th page.
        let mut cursor: Option<Cursor> = None;
        for _ in 0..9 {
            cursor = q.list(filter, cursor, 50).expect("list").next.or(cursor);
        }
        group.bench_function(BenchmarkId::new("page of 50", name), |b| {
            b.iter(|| q.list(filter, None, 50).expect("list"))
        });
        group.bench_function(BenchmarkId::new("10th page of 50", name), |b| {
            b.iter(|| q.list(filter, cursor, 50).expect("list"))
        });
        // The latency distribution the goal is about.
        let mut lat: Vec<Duration> = (0..1000)
            .map(|i| {
                let started = Instant::now();
                let page = q
                    .list(filter, if i % 2 == 0 { None } else { cursor }, 50)
                    .expect("list");
                std::hint::black_box(page);
                started.elapsed()
            })
            .collect();
        lat.sort_unstable();
        eprintln!(
            "replay/list {name}: p50 {:?}, p99 {:?}, max {:?} (1000 queries, first and 10th pages)",
            lat[499], lat[989], lat[999]
        );
    }
    group.finish();
}

fn report_bench(c: &mut Criterion) {
    let rt = workload::runtime();
    let (_, table) = fixture(&rt, &ROWS_1M);
    let q = RunQueries::open(&table).expect("open the table");
    let rows = q.report(None, None).expect("report");
    let total: u64 = rows.iter().map(|r| r.runs).sum();
    eprintln!(
        "replay/report covers {total} rows in {} targets",
        rows.len()
    );
    let mut group = c.benchmark_group("replay/report");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(total));
    group.bench_function(BenchmarkId::new("per target", "all rows"), |b| {
        b.iter(|| q.report(None, None).expect("report"))
    });
    group.finish();
}

criterion_group!(benches, rebuild_bench, list_bench, report_bench);
criterion_main!(benches);
