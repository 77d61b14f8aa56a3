//! Durable append throughput of the embedded log (batches, concurrent
//! appenders), the same workloads on SQLite (WAL, `synchronous=FULL`) side
//! by side (sequential batches, and 64 / 1024 concurrent single-event
//! writers), and one `fdatasync`'s latency on the same disk, in one run.
//!
//! Run: `cargo bench --bench log_append -- --noplot`. Temp data lives under
//! `target/neonhub-bench/` (the real disk, never committed) and is removed.
//!
//! Longer than 500 lines on purpose: one bench file per subsystem is the
//! convention (one `cargo bench --bench` per subsystem, its comparisons
//! sharing the probes and SQLite set-up above them in one run); its
//! functions are each one measurement or one step of one.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use neonhub_events::{
    Codec, Durability, EmbeddedLog, EventData, EventId, EventStore, ExpectedRevision, LogOptions,
    Metadata, RunId, StreamId,
};
use neonhub_test_support::workload;
use rusqlite::{Connection, TransactionBehavior, params};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Events per append, sequential appends.
const BATCHES: [usize; 4] = [1, 16, 256, 4096];
/// Concurrent single-event appenders, each on its own stream.
const APPENDERS: [usize; 3] = [1, 64, 1024];
/// Interleaved rounds of the latency comparison.
const PAIRS: usize = 300;

/// Where temp dirs go: the repository's target dir, on the real disk.
fn bench_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    root
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(bench_root())
        .expect("temp dir")
}

/// The log writer thread's name as `/proc` shows it (15 bytes).
const WRITER_COMM: &str = "neonhub-log-wri";

/// On-CPU and waiting-for-a-core nanoseconds (`/proc/.../schedstat`).
fn schedstat(path: &Path) -> (u64, u64) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let mut fields = stat
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// Summed schedstat of this process's threads named `comm`.
fn threads_schedstat(comm: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.trim_end() == comm {
            let (cpu, wait) = schedstat(&task.path().join("schedstat"));
            total = (total.0 + cpu, total.1 + wait);
        }
    }
    total
}

/// Where a bench's wall time went: the writer thread's and the calling
/// thread's time on a core and waiting for one (other processes share the
/// two cores), per append.
struct Probe {
    writer: (u64, u64),
    caller: (u64, u64),
    caller_path: PathBuf,
}

impl Probe {
    /// Starts counting; `caller` is the thread that awaits the appends
    /// (`None`: this thread).
    fn start(caller: Option<&str>) -> Self {
        let caller_path = PathBuf::from("/proc/thread-self/schedstat")
            .canonicalize()
            .expect("/proc/thread-self");
        let caller = match caller {
            Some(comm) => threads_schedstat(comm),
            None => schedstat(&caller_path),
        };
        Self {
            writer: threads_schedstat(WRITER_COMM),
            caller,
            caller_path,
        }
    }

    fn report(&self, label: &str, appends: u64, caller: Option<&str>) {
        let writer = threads_schedstat(WRITER_COMM);
        let now = match caller {
            Some(comm) => threads_schedstat(comm),
            None => schedstat(&self.caller_path),
        };
        let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / appends.max(1) as f64 / 1e3;
        println!(
            "{label}: per append, writer thread on-CPU {:.1} us, waiting for a core {:.1} us; \
             appending threads on-CPU {:.1} us, waiting {:.1} us ({appends} appends; {})",
            per(writer.0, self.writer.0),
            per(writer.1, self.writer.1),
            per(now.0, self.caller.0),
            per(now.1, self.caller.1),
            machine_load(),
        );
    }
}

fn metadata() -> Metadata {
    Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
    }
}

/// `n` encoded run events with fresh event ids.
fn batch(template: &EventData, n: usize) -> Vec<EventData> {
    (0..n)
        .map(|_| EventData {
            id: EventId::new(),
            ..template.clone()
        })
        .collect()
}

fn template() -> EventData {
    Codec::new()
        .encode(
            &workload::run_started(RunId::new(), Uuid::now_v7()),
            metadata(),
        )
        .expect("encode")
}

fn open_durable(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(dir, LogOptions::default()).expect("open the log")
}

/// SQLite as most users would set it up for durable appends.
fn open_sqlite(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join("events.db")).expect("open sqlite");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("journal_mode");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             stream TEXT NOT NULL,
             revision INTEGER NOT NULL,
             type TEXT NOT NULL,
             payload BLOB NOT NULL,
             PRIMARY KEY (stream, revision)
         )",
    )
    .expect("create table");
    conn
}

/// Appends `events` to a new stream as one transaction.
fn sqlite_append(conn: &mut Connection, stream: &StreamId, events: &[EventData]) {
    sqlite_append_with(conn, TransactionBehavior::Deferred, stream, events);
}

/// [`sqlite_append`] with a chosen `BEGIN` (`IMMEDIATE` for connections that
/// compete for the write lock).
fn sqlite_append_with(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    stream: &StreamId,
    events: &[EventData],
) {
    let tx = conn.transaction_with_behavior(behavior).expect("begin");
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (stream, revision, type, payload) VALUES (?1, ?2, ?3, ?4)",
            )
            .expect("prepare");
        for (revision, event) in events.iter().enumerate() {
            insert
                .execute(params![
                    stream.as_str(),
                    revision as i64,
                    event.event_type,
                    event.payload
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Embedded and SQLite batches interleaved round by round, so their ratio
/// comes from the same seconds of disk and CPU.
fn paired_batches(rt: &Runtime, template: &EventData) {
    for n in BATCHES {
        let wanted = match n {
            1 | 16 => 200,
            256 => 60,
            _ => 30,
        };
        let dir = temp_dir("paired-batches-");
        let log = open_durable(&dir.path().join("log"));
        let mut conn = open_sqlite(dir.path());
        let mut ops: Vec<TimedOp<'_>> = vec![
            (
                "embedded",
                Box::new(|| {
                    let (stream, events) = (RunId::new().stream(), batch(template, n));
                    timed(|| {
                        rt.block_on(log.append(&stream, ExpectedRevision::NoStream, events))
                            .expect("append");
                    })
                }),
            ),
            (
                "sqlite",
                Box::new(|| {
                    let (stream, events) = (RunId::new().stream(), batch(template, n));
                    timed(|| sqlite_append(&mut conn, &stream, &events))
                }),
            ),
        ];
        let rounds = rounds(wanted);
        let medians = interleaved(rounds, &mut ops);
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (embedded, sqlite) = (medians[0].1, medians[1].1);
        println!(
            "paired_batch/{n}: embedded median {:.1} us ({:.0} events/s), sqlite median {:.1} us \
             ({:.0} events/s), embedded/sqlite throughput {:.2}x over {rounds} rounds; {}",
            embedded.as_secs_f64() * 1e6,
            rate(embedded),
            sqlite.as_secs_f64() * 1e6,
            rate(sqlite),
            rate(embedded) / rate(sqlite),
            machine_load(),
        );
    }
}

/// Sequential appends of 1, 16, 256 and 4096 events, each to a new stream:
/// the embedded log and SQLite side by side.
fn append_batch(c: &mut Criterion) {
    let template = template();
    println!(
        "event: {} payload bytes, type {}",
        template.payload.len(),
        template.event_type
    );
    let rt = workload::runtime();
    paired_batches(&rt, &template);
    let mut group = c.benchmark_group("append_batch");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in BATCHES {
        group.throughput(Throughput::Elements(n as u64));

        let modes: &[(&str, Durability)] = if n == 4096 {
            // Buffered (no fdatasync) shows the CPU side of the same work.
            &[
                ("embedded", Durability::Durable),
                ("embedded_buffered", Durability::Buffered),
            ]
        } else {
            &[("embedded", Durability::Durable)]
        };
        for &(name, durability) in modes {
            let dir = temp_dir("append-embedded-");
            let options = LogOptions::default().with_durability(durability);
            let log = EmbeddedLog::open(dir.path(), options).expect("open the log");
            let appends = Cell::new(0u64);
            let probe = Probe::start(None);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    appends.set(appends.get() + iters);
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let stream = RunId::new().stream();
                            let events = batch(&template, n);
                            let start = Instant::now();
                            log.append(&stream, ExpectedRevision::NoStream, events)
                                .await
                                .expect("append");
                            total += start.elapsed();
                        }
                        total
                    })
                });
            });
            if n >= 256 {
                probe.report(&format!("append_batch/{name}/{n}"), appends.get(), None);
            }
            drop(log);
        }

        let dir = temp_dir("append-sqlite-");
        let mut conn = open_sqlite(dir.path());
        group.bench_with_input(BenchmarkId::new("sqlite", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = RunId::new().stream();
                    let events = batch(&template, n);
                    let start = Instant::now();
                    sqlite_append(&mut conn, &stream, &events);
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

/// Concurrent writers in the paired comparison, its rounds, and whether
/// SQLite with a connection per thread takes part (at 64 writers it ran at
/// 28 events/s, 2.3 s a round: 1024 would take ~40 s a round).
const PAIRED_WRITERS: [(usize, usize, bool); 2] = [(64, 12, true), (1024, 8, false)];
/// How long a SQLite connection waits for another's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// Many concurrent single-event writers, interleaved round by round: the
/// embedded log (`n` tokio tasks on the 2-worker runtime, one durable
/// append each, every writer on its own new stream) against SQLite (`n`
/// threads, one single-row transaction each, to a new stream, same table)
/// in the two ways a user would share SQLite between threads:
///
/// - `sqlite_mutex`: one connection behind a `Mutex` (what most services
///   do; no lock retries, the threads just queue on the mutex);
/// - `sqlite_conns` (64 writers only): a connection per thread with
///   `busy_timeout`, each transaction `BEGIN IMMEDIATE` (SQLite's advice
///   for concurrent writers; the waiters poll the write lock, sleeping
///   1-100 ms between tries).
///
/// One round is one event from every writer, so a round's time is what
/// `n` concurrent single-event commits take, and events/s is `n` / round.
fn paired_concurrent(_c: &mut Criterion) {
    let template = template();
    let rt = workload::runtime();
    for (writers, wanted, conns_too) in PAIRED_WRITERS {
        let dir = temp_dir("paired-concurrent-");
        let log = Arc::new(open_durable(&dir.path().join("log")));
        let shared = Mutex::new(open_sqlite(dir.path()));
        let mut conns = open_sqlite_conns(dir.path(), if conns_too { writers } else { 0 });
        let probe = Probe::start(Some("tokio-rt-worker"));
        let embedded_rounds = Cell::new(0u64);
        let template = &template;
        let mut ops: Vec<TimedOp<'_>> = vec![
            (
                "embedded",
                Box::new(|| {
                    embedded_rounds.set(embedded_rounds.get() + 1);
                    embedded_round(&rt, &log, writers, template)
                }),
            ),
            (
                "sqlite_mutex",
                Box::new(|| sqlite_mutex_round(&shared, writers, template)),
            ),
            (
                "sqlite_conns",
                Box::new(|| sqlite_conns_round(&mut conns, template)),
            ),
        ];
        if !conns_too {
            ops.pop();
        }
        let rounds = rounds(wanted);
        let medians = interleaved(rounds, &mut ops);
        drop(ops);
        print_paired_concurrent(writers, rounds, &medians);
        probe.report(
            &format!("paired_concurrent/{writers}/embedded"),
            embedded_rounds.get() * writers as u64,
            Some("tokio-rt-worker"),
        );
        drop(conns);
        drop(shared);
        drop(log);
    }
}

/// `n` SQLite connections (in `dir/conns`) that wait
/// [`SQLITE_BUSY_TIMEOUT`] for another's write lock.
fn open_sqlite_conns(dir: &Path, n: usize) -> Vec<Connection> {
    let conns_dir = dir.join("conns");
    std::fs::create_dir_all(&conns_dir).expect("create the sqlite dir");
    (0..n)
        .map(|_| {
            let conn = open_sqlite(&conns_dir);
            conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
                .expect("busy_timeout");
            conn
        })
        .collect()
}

/// One round of [`paired_concurrent`] on the embedded log: `writers` tokio
/// tasks, one durable single-event append each to a new stream.
fn embedded_round(
    rt: &Runtime,
    log: &Arc<EmbeddedLog>,
    writers: usize,
    template: &EventData,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let log = log.clone();
                let event = batch(template, 1);
                tokio::spawn(async move {
                    let stream = RunId::new().stream();
                    log.append(&stream, ExpectedRevision::NoStream, event)
                        .await
                        .expect("append");
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("appender task");
        }
        start.elapsed()
    })
}

/// One round of [`paired_concurrent`] on one SQLite connection behind a
/// mutex: `writers` threads, one single-row transaction each.
fn sqlite_mutex_round(
    shared: &Mutex<Connection>,
    writers: usize,
    template: &EventData,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| {
                let (stream, event) = (RunId::new().stream(), batch(template, 1));
                let mut conn = shared.lock().expect("sqlite mutex");
                sqlite_append(&mut conn, &stream, &event);
            });
        }
    });
    start.elapsed()
}

/// One round of [`paired_concurrent`] on a SQLite connection per thread:
/// one `BEGIN IMMEDIATE` single-row transaction on each of `conns`.
fn sqlite_conns_round(conns: &mut [Connection], template: &EventData) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for conn in conns.iter_mut() {
            s.spawn(move || {
                let (stream, event) = (RunId::new().stream(), batch(template, 1));
                sqlite_append_with(conn, TransactionBehavior::Immediate, &stream, &event);
            });
        }
    });
    start.elapsed()
}

/// Prints the medians of [`paired_concurrent`] with `writers` writers: the
/// embedded log's first, then each SQLite way's against it.
fn print_paired_concurrent(writers: usize, rounds: usize, medians: &[(&'static str, Duration)]) {
    let rate = |d: Duration| writers as f64 / d.as_secs_f64();
    let embedded = medians[0].1;
    let sqlite: Vec<String> = medians[1..]
        .iter()
        .map(|(name, m)| {
            format!(
                "{name} median round {:.1} ms ({:.0} events/s, embedded/{name} {:.1}x)",
                m.as_secs_f64() * 1e3,
                rate(*m),
                rate(embedded) / rate(*m),
            )
        })
        .collect();
    println!(
        "paired_concurrent/{writers}: embedded median round {:.2} ms ({:.0} events/s); {} \
         over {rounds} rounds; {}",
        embedded.as_secs_f64() * 1e3,
        rate(embedded),
        sqlite.join("; "),
        machine_load(),
    );
}

/// 1, 64 and 1024 tasks, each appending single events to its own stream on a
/// multi-thread runtime. One iteration is one event from every task.
fn append_concurrent(c: &mut Criterion) {
    let template = template();
    let rt = workload::runtime();
    let mut group = c.benchmark_group("append_concurrent");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for tasks in APPENDERS {
        group.throughput(Throughput::Elements(tasks as u64));
        let dir = temp_dir("concurrent-");
        let log = Arc::new(open_durable(dir.path()));
        let rounds = AtomicU64::new(0);
        let probe = Probe::start(Some("tokio-rt-worker"));
        group.bench_with_input(BenchmarkId::new("embedded", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                rounds.fetch_add(iters, Ordering::Relaxed);
                rt.block_on(async {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let log = log.clone();
                            let template = template.clone();
                            tokio::spawn(async move {
                                let stream = RunId::new().stream();
                                let mut expected = ExpectedRevision::NoStream;
                                for _ in 0..iters {
                                    let event = EventData {
                                        id: EventId::new(),
                                        ..template.clone()
                                    };
                                    let written = log
                                        .append(&stream, expected, vec![event])
                                        .await
                                        .expect("append");
                                    expected = ExpectedRevision::Exact(written.next_expected);
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.expect("appender task");
                    }
                    start.elapsed()
                })
            });
        });
        probe.report(
            &format!("append_concurrent/embedded/{tasks}"),
            rounds.load(Ordering::Relaxed) * tasks as u64,
            Some("tokio-rt-worker"),
        );
        drop(log);
        drop(dir);
    }
    group.finish();
}

/// Appends 4 KiB to `file` and waits for `fdatasync`.
fn write_and_sync(file: &mut File, block: &[u8]) {
    file.write_all(block).expect("write");
    file.sync_data().expect("fdatasync");
}

/// The bytes a batch of `n` template events takes in a segment.
fn batch_bytes(rt: &Runtime, template: &EventData, n: usize) -> usize {
    let dir = temp_dir("batch-size-");
    let options = LogOptions::default().with_durability(Durability::Buffered);
    let log = EmbeddedLog::open(dir.path(), options).expect("open the log");
    let segments = || -> u64 {
        std::fs::read_dir(dir.path())
            .expect("list the log")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .map(|e| e.metadata().expect("stat").len())
            .sum()
    };
    let before = segments();
    rt.block_on(log.append(
        &RunId::new().stream(),
        ExpectedRevision::NoStream,
        batch(template, n),
    ))
    .expect("append");
    log.close();
    (segments() - before) as usize
}

/// `n` when criterion measures (`--bench`); a couple when it only
/// smoke-tests each bench once (`cargo test --benches`).
fn rounds(n: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") {
        n
    } else {
        n.min(2)
    }
}

/// A named operation that times itself.
type TimedOp<'a> = (&'static str, Box<dyn FnMut() -> Duration + 'a>);

/// How long `f` took.
fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Runs every op once per round, `rounds` times, and returns each op's
/// median.
fn interleaved(rounds: usize, ops: &mut [TimedOp<'_>]) -> Vec<(&'static str, Duration)> {
    let mut samples = vec![Vec::with_capacity(rounds); ops.len()];
    for _ in 0..rounds {
        for (i, (_, op)) in ops.iter_mut().enumerate() {
            samples[i].push(op());
        }
    }
    ops.iter()
        .zip(samples)
        .map(|((name, _), s)| (*name, median(s)))
        .collect()
}

/// Load average and CPU / IO pressure (PSI, avg60): how much other
/// processes were competing for the 2 cores and the disk.
fn machine_load() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let some60 = |p: &str| {
        read(p)
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("avg60=")))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "loadavg {}; cpu pressure {}%, io pressure {}% (some, avg60)",
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        some60("/proc/pressure/cpu"),
        some60("/proc/pressure/io"),
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One `fdatasync` of a 4 KiB append next to one durable single-event
/// append, on the same disk, in the same run.
fn durable_latency(c: &mut Criterion) {
    let mut rig = LatencyRig::new();
    paired_latency(&mut rig);

    let mut group = c.benchmark_group("durable_latency");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    fdatasync_benches(&mut group, &mut rig);
    single_append_benches(&mut group, &mut rig);
    group.finish();
}

/// What [`durable_latency`]'s measurements share, in one temp dir. The
/// fields drop in this order (the dir after what is in it).
struct LatencyRig {
    /// The 4 KiB probe file.
    file: File,
    block: Vec<u8>,
    conn: Connection,
    log: EmbeddedLog,
    dir: TempDir,
    rt: Runtime,
    template: EventData,
}

impl LatencyRig {
    /// Opens the log, SQLite and the probe file in a new temp dir.
    fn new() -> Self {
        let template = template();
        let rt = workload::runtime();
        let dir = temp_dir("latency-");
        let log = open_durable(&dir.path().join("log"));
        let conn = open_sqlite(dir.path());
        let block = vec![0x5a_u8; 4096];
        let file = File::create(dir.path().join("fsync-probe")).expect("create probe file");
        Self {
            file,
            block,
            conn,
            log,
            dir,
            rt,
            template,
        }
    }
}

/// Prints the medians of `fdatasync`s, a durable embedded append and a
/// SQLite transaction, interleaved round by round, against one `fdatasync`
/// of a 4 KiB append.
fn paired_latency(rig: &mut LatencyRig) {
    let LatencyRig {
        file,
        block,
        conn,
        log,
        dir,
        rt,
        template,
    } = rig;
    // Interleaved rounds: every median comes from the same seconds, so the
    // ratios do not move with the disk's swings (0.2-4 ms by the hour, and
    // other processes share this disk).
    let small = vec![0x5a_u8; 512];
    let mut small_file = File::create(dir.path().join("fsync-small")).expect("create probe file");
    let mut ops: Vec<TimedOp<'_>> = vec![
        (
            "fdatasync(4 KiB append)",
            Box::new(|| timed(|| write_and_sync(file, block))),
        ),
        (
            "fdatasync(512 B append)",
            Box::new(|| timed(|| write_and_sync(&mut small_file, &small))),
        ),
        (
            "embedded durable single append",
            Box::new(|| {
                let (stream, event) = (RunId::new().stream(), batch(template, 1));
                timed(|| {
                    rt.block_on(log.append(&stream, ExpectedRevision::NoStream, event))
                        .expect("append");
                })
            }),
        ),
        (
            "sqlite single-row transaction",
            Box::new(|| {
                let (stream, event) = (RunId::new().stream(), batch(template, 1));
                timed(|| sqlite_append(conn, &stream, &event))
            }),
        ),
    ];
    let medians = interleaved(rounds(PAIRS), &mut ops);
    drop(ops);
    let base = medians[0].1;
    for (name, m) in &medians {
        println!(
            "paired/{name}: median {:.1} us = {:.2}x fdatasync(4 KiB append)",
            m.as_secs_f64() * 1e6,
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!("paired/load: {}", machine_load());
}

/// `fdatasync` after a 4 KiB append, after a 4 KiB overwrite, and after a
/// write as large as a 4096-event batch.
fn fdatasync_benches(group: &mut BenchmarkGroup<'_, WallTime>, rig: &mut LatencyRig) {
    let LatencyRig {
        file,
        block,
        dir,
        rt,
        template,
        ..
    } = rig;
    group.bench_function("fdatasync_4k_append", |b| {
        b.iter(|| write_and_sync(file, block));
    });
    group.bench_function("fdatasync_4k_overwrite", |b| {
        use std::os::unix::fs::FileExt;
        b.iter(|| {
            file.write_all_at(block, 0).expect("pwrite");
            file.sync_data().expect("fdatasync");
        });
    });
    // One fdatasync of a write as large as a 4096-event batch: the floor
    // of a durable 4096-event append on this disk.
    let big = vec![0x5a_u8; batch_bytes(rt, template, 4096)];
    let mut big_file = File::create(dir.path().join("fsync-batch")).expect("create probe file");
    group.bench_function(BenchmarkId::new("fdatasync_write", big.len()), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                if i.is_multiple_of(64) {
                    big_file.set_len(0).expect("truncate");
                    big_file.sync_all().expect("fsync");
                }
                let start = Instant::now();
                write_and_sync(&mut big_file, &big);
                total += start.elapsed();
            }
            total
        });
    });
}

/// One durable single-event append to a new stream, on the embedded log
/// and as a SQLite transaction.
fn single_append_benches(group: &mut BenchmarkGroup<'_, WallTime>, rig: &mut LatencyRig) {
    let LatencyRig {
        conn,
        log,
        rt,
        template,
        ..
    } = rig;
    group.bench_function("embedded_single_append", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let event = batch(template, 1);
                    let stream = RunId::new().stream();
                    let start = Instant::now();
                    log.append(&stream, ExpectedRevision::NoStream, event)
                        .await
                        .expect("append");
                    total += start.elapsed();
                }
                total
            })
        });
    });
    group.bench_function("sqlite_single_insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let event = batch(template, 1);
                let stream = RunId::new().stream();
                let start = Instant::now();
                sqlite_append(conn, &stream, &event);
                total += start.elapsed();
            }
            total
        });
    });
}

criterion_group!(
    benches,
    durable_latency,
    append_batch,
    append_concurrent,
    paired_concurrent
);
criterion_main!(benches);
