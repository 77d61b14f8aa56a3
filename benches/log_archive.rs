//! Retention: `EmbeddedLog::archive` of more than 1 GB of sealed segments
//! (zstd into an archive directory; bytes of live segments per second), and
//! `EmbeddedLog::verify_with_archive` across that archive and the live log
//! (events per second: every archived record decompressed, its CRC and the
//! hash chain checked from the first event, then the live log).
//!
//! Run: `cargo bench --bench log_archive -- --noplot`. The fixture (runs of
//! `RunStarted` + `RunSucceeded`, buffered appends, 64 MiB segments) is
//! built once under `target/neonhub-bench/fixtures/`; each archive sample
//! works on a fresh copy of it (the copy is not timed, and leaves the page
//! cache warm).

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use neonhub_events::{EmbeddedLog, LogOptions, Position, Timestamp};
use neonhub_test_support::workload;

/// Runs in the fixture: about 1.2 GB of segments.
const RUNS: u64 = 2_000_000;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(root.join("fixtures")).expect("create target/neonhub-bench");
    root
}

/// A log of `runs` runs (both events of a run in one append, 64 tasks),
/// built once; with 1 MiB segments outside a measurement, so that the
/// check's small log has sealed segments to archive.
fn fixture(runs: u64) -> PathBuf {
    let (name, options) = if measuring() {
        (format!("archive-{runs}"), LogOptions::default())
    } else {
        (
            format!("archive-{runs}-1mib"),
            LogOptions::default().with_segment_size(1 << 20),
        )
    };
    workload::finished_runs_log(&root().join("fixtures").join(name), runs, true, options)
}

/// A fresh copy of the fixture's files in `to` (replacing it).
fn copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("list the fixture") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a fixture file");
    }
}

/// Bytes of the sealed segments (every segment but the last).
fn sealed_bytes(dir: &Path) -> u64 {
    let mut sizes: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| (e.path(), e.metadata().expect("stat").len()))
        .collect();
    sizes.sort();
    sizes.pop();
    sizes.iter().map(|(_, n)| n).sum()
}

fn archive(c: &mut Criterion) {
    let runs = if measuring() { RUNS } else { 2_000 };
    let fixture = fixture(runs);
    let work = root().join("archive-work");
    let bytes = sealed_bytes(&fixture);
    let mut group = c.benchmark_group("archive");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(bytes));
    group.bench_with_input(
        BenchmarkId::new("sealed_segments_bytes", bytes),
        &bytes,
        |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    copy(&fixture, &work.join("log"));
                    let _ = std::fs::remove_dir_all(work.join("cold"));
                    let start = Instant::now();
                    let report = EmbeddedLog::archive(
                        work.join("log"),
                        Timestamp::now(),
                        Position(u64::MAX),
                        work.join("cold"),
                    )
                    .expect("archive");
                    spent += start.elapsed();
                    assert_eq!(report.bytes, bytes);
                }
                spent
            });
        },
    );
    group.finish();

    // The last copy stays archived: verify across it.
    let log = EmbeddedLog::open_read_only(work.join("log"), LogOptions::default())
        .expect("open the archived copy");
    let events = 2 * runs;
    assert!(log.archived_before() > Position(0));
    let report = log
        .verify_with_archive(work.join("cold"))
        .expect("verify across the archive");
    assert_eq!(report.events, events);
    let mut group = c.benchmark_group("verify_across_archive");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(events));
    group.bench_with_input(BenchmarkId::new("events", events), &events, |b, _| {
        b.iter(|| {
            log.verify_with_archive(work.join("cold"))
                .expect("verify across the archive")
        });
    });
    group.finish();
    drop(log);
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, archive);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
