//! Append and read throughput through the EventStoreDB backend (`EsdbStore`)
//! next to the raw `kurrentdb` client's own round trips, in the same run,
//! against the in-process test server (events in memory: this measures the
//! adapter and the client, not a real node's disk).
//!
//! Then the same operations again, backend and client interleaved round by
//! round, printed as a table: on a shared machine that comparison is the one
//! to trust.
//!
//! Run: `cargo bench --bench esdb -- --noplot`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use neonhub_esdb_test_server::TestServer;
use neonhub_events::{
    Direction, EsdbStore, EventData, EventId, EventStore, ExpectedRevision, Metadata, Position,
    ReadFrom, StreamId,
};

/// Appends kept in flight for the concurrent throughput.
const IN_FLIGHT: usize = 64;
/// Events in the stream read back, and in one `$all` page.
const READ_EVENTS: usize = 500;
/// Payload of each event: about a `RunStarted` with a small input.
const PAYLOAD: usize = 200;

fn ours(n: u64) -> EventData {
    EventData {
        id: EventId::new(),
        event_type: "bench.event.v1".to_string(),
        metadata: Metadata {
            correlation_id: Some(uuid::Uuid::now_v7()),
            causation_id: None,
        },
        payload: vec![(n % 251) as u8; PAYLOAD],
    }
}

/// The same event as the raw client sends it (binary, JSON metadata of the
/// same size as the backend's).
fn raw(n: u64) -> kurrentdb::EventData {
    let metadata = format!("{{\"$correlationId\":\"{}\"}}", uuid::Uuid::now_v7());
    kurrentdb::EventData::binary(
        "bench.event.v1",
        bytes::Bytes::from(vec![(n % 251) as u8; PAYLOAD]),
    )
    .id(uuid::Uuid::now_v7())
    .metadata(bytes::Bytes::from(metadata))
}

fn stream(tag: &str) -> StreamId {
    StreamId::new(format!("bench-{tag}-{}", uuid::Uuid::new_v4().simple())).expect("name")
}

type Client = kurrentdb::Client;

async fn backend_append(store: &EsdbStore, s: &StreamId) {
    store
        .append(s, ExpectedRevision::Any, vec![ours(1)])
        .await
        .expect("append");
}

async fn client_append(client: &Client, s: &StreamId) {
    client
        .append_to_stream(s.as_str(), &Default::default(), raw(1))
        .await
        .expect("append");
}

/// IN_FLIGHT appends at once, one new stream each at `NoStream`, as neonhub
/// starts runs.
async fn backend_append_parallel(store: &Arc<EsdbStore>) {
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &stream("par-backend"),
                        ExpectedRevision::NoStream,
                        vec![ours(i as u64)],
                    )
                    .await
                    .expect("append")
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

async fn client_append_parallel(client: &Arc<Client>) {
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let options = kurrentdb::AppendToStreamOptions::default()
                    .stream_state(kurrentdb::StreamState::NoStream);
                client
                    .append_to_stream(stream("par-client").as_str(), &options, raw(i as u64))
                    .await
                    .expect("append")
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

async fn backend_read_stream(store: &EsdbStore, s: &StreamId) {
    let events = store
        .read_stream(s, Direction::Forwards, ReadFrom::Start, READ_EVENTS)
        .await
        .expect("read");
    assert_eq!(events.len(), READ_EVENTS);
}

async fn client_read_stream(client: &Client, s: &StreamId) {
    let options = kurrentdb::ReadStreamOptions::default().max_count(READ_EVENTS);
    let mut read = client
        .read_stream(s.as_str(), &options)
        .await
        .expect("read");
    let mut n = 0;
    while let Some(e) = read.next().await.expect("next") {
        std::hint::black_box(&e);
        n += 1;
    }
    assert_eq!(n, READ_EVENTS);
}

async fn backend_read_all(store: &EsdbStore, from: Position) {
    let events = store.read_all(from, READ_EVENTS).await.expect("read all");
    assert_eq!(events.len(), READ_EVENTS);
}

/// The same page: from the head's commit position (the backend asks one
/// more and drops the event there), filtered to non-system streams.
async fn client_read_all(client: &Client, commit: u64) {
    let options = kurrentdb::ReadAllOptions::default()
        .position(kurrentdb::StreamPosition::Position(kurrentdb::Position {
            commit,
            prepare: commit,
        }))
        .forwards()
        .filter(kurrentdb::SubscriptionFilter::on_stream_name().regex("^[^$]"))
        .max_count(READ_EVENTS + 1);
    let mut read = client.read_all(&options).await.expect("read all");
    let mut n = 0;
    while let Some(e) = read.next().await.expect("next") {
        std::hint::black_box(&e);
        n += 1;
    }
    assert!(n >= READ_EVENTS);
}

/// Rounds of the interleaved comparison.
const AB_ROUNDS: usize = 15;

/// Times `ops` runs of `backend` then of `client` (alternating which goes
/// first) per round, so both see the same machine load; returns the median
/// of each one's elements per second and of their per-round ratio.
fn interleaved<FB, FC, B, C>(
    rt: &tokio::runtime::Runtime,
    ops: usize,
    elements: usize,
    mut backend: FB,
    mut client: FC,
) -> (f64, f64, f64)
where
    FB: FnMut() -> B,
    FC: FnMut() -> C,
    B: Future<Output = ()>,
    C: Future<Output = ()>,
{
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut b, mut c, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..AB_ROUNDS {
        let mut time_backend = || {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..ops {
                    backend().await;
                }
            });
            (ops * elements) as f64 / t.elapsed().as_secs_f64()
        };
        let (rb, rc);
        if round % 2 == 0 {
            rb = time_backend();
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..ops {
                    client().await;
                }
            });
            rc = (ops * elements) as f64 / t.elapsed().as_secs_f64();
        } else {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..ops {
                    client().await;
                }
            });
            rc = (ops * elements) as f64 / t.elapsed().as_secs_f64();
            rb = time_backend();
        }
        b.push(rb);
        c.push(rc);
        ratio.push(rb / rc);
    }
    (median(b), median(c), median(ratio))
}

fn esdb(c: &mut Criterion) {
    let server = TestServer::start().expect("test server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(EsdbStore::connect(&server.url()).expect("connect"));
    let client = Arc::new(
        Client::with_runtime_handle(rt.handle().clone(), server.url().parse().expect("settings"))
            .expect("client"),
    );
    let seq_backend = stream("seq-backend");
    let seq_client = stream("seq-client");
    // Connect both before timing.
    rt.block_on(async {
        backend_append(&store, &seq_backend).await;
        client_append(&client, &seq_client).await;
    });

    let mut g = c.benchmark_group("esdb_append");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("backend", "1 in flight"), |b| {
        b.to_async(&rt)
            .iter(|| backend_append(&store, &seq_backend))
    });
    g.bench_function(BenchmarkId::new("client", "1 in flight"), |b| {
        b.to_async(&rt).iter(|| client_append(&client, &seq_client))
    });
    g.throughput(Throughput::Elements(IN_FLIGHT as u64));
    let label = format!("{IN_FLIGHT} in flight");
    g.bench_function(BenchmarkId::new("backend", &label), |b| {
        b.to_async(&rt).iter(|| backend_append_parallel(&store))
    });
    g.bench_function(BenchmarkId::new("client", &label), |b| {
        b.to_async(&rt).iter(|| client_append_parallel(&client))
    });
    g.finish();

    // A stream of READ_EVENTS events, read whole; and a page of `$all`.
    let read = stream("read");
    let all_from = rt.block_on(async {
        let from = store.head().await.expect("head");
        for chunk in 0..(READ_EVENTS / 50) {
            let batch = (0..50).map(|i| ours((chunk * 50 + i) as u64)).collect();
            store
                .append(&read, ExpectedRevision::Any, batch)
                .await
                .expect("fill");
        }
        from
    });
    let all_commit = all_from.0 / 2;
    let mut g = c.benchmark_group("esdb_read");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(READ_EVENTS as u64));
    g.bench_function(BenchmarkId::new("backend", "stream"), |b| {
        b.to_async(&rt).iter(|| backend_read_stream(&store, &read))
    });
    g.bench_function(BenchmarkId::new("client", "stream"), |b| {
        b.to_async(&rt).iter(|| client_read_stream(&client, &read))
    });
    g.bench_function(BenchmarkId::new("backend", "$all page"), |b| {
        b.to_async(&rt).iter(|| backend_read_all(&store, all_from))
    });
    g.bench_function(BenchmarkId::new("client", "$all page"), |b| {
        b.to_async(&rt)
            .iter(|| client_read_all(&client, all_commit))
    });
    g.finish();

    // The same operations, backend and client interleaved round by round, so
    // a busy machine weighs on both alike.
    println!(
        "\nesdb A/B, interleaved: median of {AB_ROUNDS} rounds, events/s\n\
         {:<22} {:>12} {:>12} {:>16}",
        "operation", "backend", "client", "backend/client"
    );
    let rows = [
        (
            "append, 1 in flight",
            interleaved(
                &rt,
                200,
                1,
                || backend_append(&store, &seq_backend),
                || client_append(&client, &seq_client),
            ),
        ),
        (
            "append, 64 in flight",
            interleaved(
                &rt,
                10,
                IN_FLIGHT,
                || backend_append_parallel(&store),
                || client_append_parallel(&client),
            ),
        ),
        (
            "read stream (500)",
            interleaved(
                &rt,
                10,
                READ_EVENTS,
                || backend_read_stream(&store, &read),
                || client_read_stream(&client, &read),
            ),
        ),
        (
            "read $all page (500)",
            interleaved(
                &rt,
                10,
                READ_EVENTS,
                || backend_read_all(&store, all_from),
                || client_read_all(&client, all_commit),
            ),
        ),
    ];
    for (name, (b, c, r)) in rows {
        println!("{name:<22} {b:>12.0} {c:>12.0} {r:>16.2}");
    }
    drop(store);
    drop(client);
    rt.shutdown_background();
    drop(server);
}

criterion_group!(benches, esdb);
criterion_main!(benches);
