//! Start-up recovery on a log of many finished runs: the scan of the whole
//! log (`find_unfinished`, what `Service::start` did before) against the
//! runs in flight taken from the AgentRun table (`find_in_flight`), with
//! the table at the log's head and 10,000 events behind it.
//!
//! Run: `cargo bench --bench recovery -- --noplot`. The fixture (500k
//! finished runs, 1M events, then 16 runs stopped mid-run with a step each,
//! and its table) is built once under `target/neonhub-bench/fixtures/`;
//! delete it to rebuild.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use neonhub::{RecoverySource, find_in_flight};
use neonhub_actors::find_unfinished;
use neonhub_events::{
    Codec, Durability, EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Metadata, Position,
    RunId, SharedStore,
};
use neonhub_projections::{AsOf, RebuildOptions, rebuild};
use neonhub_test_support::workload;
use uuid::Uuid;

/// Finished runs in the fixture (two events each).
const RUNS: u64 = 500_000;
/// Runs stopped mid-run at the end of the fixture, each with a step.
const OPEN: u64 = 16;
/// How far the lagging table is behind the log.
const LAG: u64 = 10_000;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn fixtures_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench/fixtures");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench/fixtures");
    root
}

/// The log, its table at the head and its table `LAG` events behind.
struct Fixture {
    log: PathBuf,
    at_head: PathBuf,
    behind: PathBuf,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let runs = if measuring() { RUNS } else { 500 };
    let dir = fixtures_root().join(format!("recovery-{runs}"));
    let fixture = Fixture {
        log: dir.join("log"),
        at_head: dir.join("at-head.sqlite"),
        behind: dir.join("behind.sqlite"),
    };
    let done = dir.join("complete");
    if done.exists() {
        return fixture;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let start = Instant::now();
    let log = Arc::new(
        EmbeddedLog::open(
            &fixture.log,
            LogOptions::default().with_durability(Durability::Buffered),
        )
        .expect("open the fixture log"),
    );
    rt.block_on(async {
        workload::append_finished_runs(log.clone(), runs, 64, false).await;
        let codec = Codec::new();
        for _ in 0..OPEN {
            let run_id = RunId::new();
            let correlation_id = Uuid::now_v7();
            let started = workload::run_started(run_id, correlation_id);
            let data = codec.encode(&started, Metadata::default()).expect("encode");
            log.append(&run_id.stream(), ExpectedRevision::NoStream, vec![data])
                .await
                .expect("append");
            let step = run_id.step("twilio.send_sms#1");
            let mut started = workload::run_started(step, correlation_id);
            if let neonhub_events::RunEvent::Started(s) = &mut started {
                s.parent_run_id = Some(run_id);
                s.kind = neonhub_events::RunKind::Connector;
                s.step = Some("twilio.send_sms#1".into());
            }
            let data = codec.encode(&started, Metadata::default()).expect("encode");
            log.append(&step.stream(), ExpectedRevision::NoStream, vec![data])
                .await
                .expect("append");
        }
        let head = log.head().await.expect("head");
        let shared: SharedStore = log.clone();
        rebuild(&shared, &fixture.at_head, RebuildOptions::default())
            .await
            .expect("rebuild at the head");
        let behind = AsOf::Position(Position(head.0.saturating_sub(LAG + 1)));
        rebuild(
            &shared,
            &fixture.behind,
            RebuildOptions::default().as_of(behind),
        )
        .await
        .expect("rebuild behind");
    });
    let log = Arc::into_inner(log).expect("tasks are done");
    log.close();
    std::fs::write(&done, "").expect("mark the fixture complete");
    println!(
        "built fixture {}: {runs} finished runs and {OPEN} open ones, tables, in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    fixture
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fixture = fixture(&rt);
    let log: SharedStore = Arc::new(
        EmbeddedLog::open_read_only(&fixture.log, LogOptions::default()).expect("open the log"),
    );
    let codec = Codec::new();
    let (events, expected) = rt
        .block_on(find_unfinished(&*log, &codec))
        .expect("full scan");
    assert_eq!(expected.len() as u64, 2 * OPEN);
    for table in [&fixture.at_head, &fixture.behind] {
        let (index, source) = rt
            .block_on(find_in_flight(&*log, &codec, table))
            .expect("from the table");
        assert!(matches!(source, RecoverySource::Table { .. }), "{source:?}");
        assert_eq!(index.select(|_| true), expected);
        println!(
            "{}: {} events read, against {events} for the full scan",
            table.display(),
            index.scanned()
        );
    }

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(if measuring() { 20 } else { 1 }));
    let mut group = c.benchmark_group("start_up_recovery");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let events = format!("{events}_events");
    group.bench_function(BenchmarkId::new("full_scan", &events), |b| {
        b.iter(|| rt.block_on(find_unfinished(&*log, &codec)).expect("scan"));
    });
    for (name, table) in [
        ("table_at_head", &fixture.at_head),
        ("table_10k_behind", &fixture.behind),
    ] {
        group.bench_function(BenchmarkId::new(name, &events), |b| {
            b.iter(|| {
                rt.block_on(find_in_flight(&*log, &codec, table))
                    .expect("from the table")
            });
        });
    }
    group.finish();
    c.final_summary();
}
