//! Reading and opening a large embedded log: read-all throughput (envelope
//! only, and decoded to `RunEvent`s) over 200k events, the time to open a
//! log of 1M events, and the resident memory of a process holding an open
//! log of 1M runs (2M events).
//!
//! Run: `cargo bench --bench log_open -- --noplot`. The fixtures are built
//! once (buffered appends) under `target/neonhub-bench/fixtures/` and reused
//! by later runs; delete that directory to rebuild them.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use neonhub_events::{Codec, EmbeddedLog, EventStore, LogOptions, Position};
use neonhub_test_support::workload;

/// Runs in the read-all fixture (two events each).
const READ_RUNS: u64 = 100_000;
/// Runs in the open fixture: 1M events.
const OPEN_RUNS: u64 = 500_000;
/// Runs in the memory fixture: 2M events.
const RSS_RUNS: u64 = 1_000_000;
/// Events asked for per `read_all` call.
const READ_LIMIT: usize = 4096;
/// Part of the fixtures' names: the segment format they were written in
/// (the hash chain moved from blake3 to SHA-256 in 1f8864c without a format
/// version bump, so older fixtures no longer open) and, since `runs`, that
/// each run's events sit in its own run's stream (so `neonhub replay` builds
/// a table from them).
const FIXTURE_FORMAT: &str = "sha256-runs";
/// Runs in the scale fixture: 20M events (with `NEONHUB_BENCH_SCALE=1`).
const SCALE_RUNS: u64 = 10_000_000;
/// Set (to a log directory) in the child process that measures RSS.
const RSS_CHILD_ENV: &str = "NEONHUB_BENCH_RSS_LOG";
/// Set (to a log directory) in the child process that reads random streams
/// from a cold page cache.
const COLD_CHILD_ENV: &str = "NEONHUB_BENCH_COLD_LOG";
/// Streams read by the cold-read child.
const COLD_READS: usize = 1000;

/// Whether criterion measures (`--bench`) rather than smoke-tests each bench
/// once (`cargo test --benches`), which gets small fixtures.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `runs`, or a small stand-in when only smoke-testing.
fn scaled(runs: u64) -> u64 {
    if measuring() { runs } else { 500 }
}

fn fixtures_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench/fixtures");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench/fixtures");
    root
}

/// A log of `runs` runs (`RunStarted` then `RunSucceeded`, appended
/// separately as a service would, by 64 concurrent tasks), built once.
fn fixture(name: &str, runs: u64) -> PathBuf {
    let runs = scaled(runs);
    let dir = fixtures_root().join(format!("{name}-{FIXTURE_FORMAT}-{runs}"));
    workload::finished_runs_log(&dir, runs, false, LogOptions::default())
}

/// Reads the whole log, returning how many events it saw.
async fn read_everything(log: &EmbeddedLog, codec: Option<&Codec>) -> u64 {
    let mut from = Position::START;
    let mut seen = 0u64;
    loop {
        let events = log.read_all(from, READ_LIMIT).await.expect("read_all");
        let Some(last) = events.last() else {
            return seen;
        };
        from = last.position.next();
        seen += events.len() as u64;
        match codec {
            Some(codec) => {
                for event in &events {
                    black_box(codec.decode(event).expect("decode"));
                }
            }
            None => {
                black_box(&events);
            }
        }
    }
}

fn read_all(c: &mut Criterion) {
    let dir = fixture("read", READ_RUNS);
    let log = EmbeddedLog::open(&dir, LogOptions::default()).expect("open");
    let events = 2 * scaled(READ_RUNS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let codec = Codec::new();
    assert_eq!(rt.block_on(read_everything(&log, Some(&codec))), events);

    let mut group = c.benchmark_group("read_all");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(events));
    group.bench_with_input(BenchmarkId::new("envelope", events), &events, |b, _| {
        b.iter(|| rt.block_on(read_everything(&log, None)));
    });
    group.bench_with_input(BenchmarkId::new("decoded", events), &events, |b, _| {
        b.iter(|| rt.block_on(read_everything(&log, Some(&codec))));
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let dir = fixture("open", OPEN_RUNS);
    let events = 2 * scaled(OPEN_RUNS);
    let mut group = c.benchmark_group("open");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    group.bench_with_input(BenchmarkId::new("embedded", events), &dir, |b, dir| {
        b.iter(|| {
            let log = EmbeddedLog::open(dir, LogOptions::default()).expect("open");
            drop(black_box(log));
        });
    });
    group.finish();
}

/// Open time and resident memory of a fresh process (this bench binary
/// again, so nothing else the benches did counts) that opens the 1M-event
/// and the 2M-event (1M runs) logs and, with `NEONHUB_BENCH_SCALE=1`, the
/// 20M-event log (10M runs, about 3.5 GB, built once in a few minutes),
/// interleaved three times; then reads of random runs' streams from the
/// 20M-event log with a cold page cache.
fn memory() {
    let scale = measuring() && std::env::var_os("NEONHUB_BENCH_SCALE").is_some();
    let mut logs = vec![("open", OPEN_RUNS), ("rss", RSS_RUNS)];
    if scale {
        logs.push(("scale", SCALE_RUNS));
    }
    let dirs: Vec<PathBuf> = logs.iter().map(|&(n, r)| fixture(n, r)).collect();
    for _ in 0..if scale { 3 } else { 1 } {
        for dir in &dirs {
            child(RSS_CHILD_ENV, dir);
        }
    }
    if scale {
        child(COLD_CHILD_ENV, &dirs[2]);
    }
}

/// Runs this bench binary again with `env` set to `dir` and prints its
/// output.
fn child(env: &str, dir: &Path) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(env, dir)
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Picks `COLD_READS` random runs, drops the page cache (needs root; says
/// so when it cannot), then reads each run's stream and prints the
/// latency percentiles.
fn cold_child(dir: &Path) {
    let log = EmbeddedLog::open_read_only(dir, LogOptions::default()).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let head = rt.block_on(log.head()).expect("head").0;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let streams: Vec<_> = (0..COLD_READS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let events = rt
                .block_on(log.read_all(Position(x % head), 1))
                .expect("read_all");
            events[0].stream.clone()
        })
        .collect();
    drop(log);
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let log = EmbeddedLog::open_read_only(dir, LogOptions::default()).expect("open");
    if dropped {
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches");
    }
    let mut took: Vec<Duration> = streams
        .iter()
        .map(|stream| {
            let start = Instant::now();
            let events = rt
                .block_on(log.read_stream(
                    stream,
                    neonhub_events::Direction::Forwards,
                    neonhub_events::ReadFrom::Start,
                    usize::MAX,
                ))
                .expect("read_stream");
            assert_eq!(events.len(), 2);
            start.elapsed()
        })
        .collect();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "cold_read/{head} events: {COLD_READS} random runs' streams, page cache {}: p50 {:?}, p99 {:?}, max {:?}",
        if dropped {
            "dropped"
        } else {
            "NOT dropped (not root)"
        },
        at(0.5),
        at(0.99),
        took[took.len() - 1],
    );
}

/// A `/proc/self/status` field, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status field")
}

fn rss_child(dir: &Path) {
    let before = status_kib("VmRSS");
    let start = Instant::now();
    let log = EmbeddedLog::open(dir, LogOptions::default()).expect("open");
    let took = start.elapsed();
    let after = status_kib("VmRSS");
    let peak = status_kib("VmHWM");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let head = rt.block_on(log.head()).expect("head");
    println!(
        "fresh_process/{} runs: {} events, opened in {:.3} s; \
         VmRSS before open {:.1} MiB, after open {:.1} MiB (+{:.1} MiB), VmHWM {:.1} MiB",
        log.stream_count(),
        head.0,
        took.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
}

criterion_group!(benches, read_all, open);

fn main() {
    if let Some(dir) = std::env::var_os(RSS_CHILD_ENV) {
        rss_child(Path::new(&dir));
        return;
    }
    if let Some(dir) = std::env::var_os(COLD_CHILD_ENV) {
        cold_child(Path::new(&dir));
        return;
    }
    benches();
    memory();
    Criterion::default().configure_from_args().final_summary();
}
