//! Append and read throughput through the EventStoreDB backend (`EsdbStore`)
//! next to the raw `kurrentdb` client's own round trips, in the same run,
//! against the in-process test server (events in memory: this measures the
//! adapter and the client, not a real node's disk).
//!
//! Run: `cargo bench --bench esdb -- --noplot`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

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

fn esdb(c: &mut Criterion) {
    let server = TestServer::start().expect("test server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(EsdbStore::connect(&server.url()).expect("connect"));
    let client = Arc::new(
        kurrentdb::Client::with_runtime_handle(
            rt.handle().clone(),
            server.url().parse().expect("settings"),
        )
        .expect("client"),
    );
    // Connect both before timing.
    rt.block_on(async {
        let s = stream("warm");
        store
            .append(&s, ExpectedRevision::Any, vec![ours(0)])
            .await
            .expect("warm up backend");
        client
            .append_to_stream(s.as_str(), &Default::default(), raw(0))
            .await
            .expect("warm up client");
    });

    let mut g = c.benchmark_group("esdb_append");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    let s = stream("seq-backend");
    g.bench_function(BenchmarkId::new("backend", "1 in flight"), |b| {
        b.to_async(&rt).iter(|| async {
            store
                .append(&s, ExpectedRevision::Any, vec![ours(1)])
                .await
                .expect("append")
        })
    });
    let s = stream("seq-client");
    g.bench_function(BenchmarkId::new("client", "1 in flight"), |b| {
        b.to_async(&rt).iter(|| async {
            client
                .append_to_stream(s.as_str(), &Default::default(), raw(1))
                .await
                .expect("append")
        })
    });
    g.throughput(Throughput::Elements(IN_FLIGHT as u64));
    let label = format!("{IN_FLIGHT} in flight");
    g.bench_function(BenchmarkId::new("backend", &label), |b| {
        b.to_async(&rt).iter(|| async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        // One run stream each, as neonhub writes them.
                        let s = stream("par-backend");
                        store
                            .append(&s, ExpectedRevision::NoStream, vec![ours(i as u64)])
                            .await
                            .expect("append")
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        })
    });
    g.bench_function(BenchmarkId::new("client", &label), |b| {
        b.to_async(&rt).iter(|| async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|i| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let s = stream("par-client");
                        let options = kurrentdb::AppendToStreamOptions::default()
                            .stream_state(kurrentdb::StreamState::NoStream);
                        client
                            .append_to_stream(s.as_str(), &options, raw(i as u64))
                            .await
                            .expect("append")
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        })
    });
    g.finish();

    // A stream of READ_EVENTS events, read whole; and a page of `$all`.
    let read_stream = stream("read");
    let all_from = rt.block_on(async {
        let from = store.head().await.expect("head");
        for chunk in 0..(READ_EVENTS / 50) {
            let batch = (0..50).map(|i| ours((chunk * 50 + i) as u64)).collect();
            store
                .append(&read_stream, ExpectedRevision::Any, batch)
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
        b.to_async(&rt).iter(|| async {
            let events = store
                .read_stream(
                    &read_stream,
                    Direction::Forwards,
                    ReadFrom::Start,
                    READ_EVENTS,
                )
                .await
                .expect("read");
            assert_eq!(events.len(), READ_EVENTS);
        })
    });
    g.bench_function(BenchmarkId::new("client", "stream"), |b| {
        b.to_async(&rt).iter(|| async {
            let options = kurrentdb::ReadStreamOptions::default().max_count(READ_EVENTS);
            let mut read = client
                .read_stream(read_stream.as_str(), &options)
                .await
                .expect("read");
            let mut n = 0;
            while let Some(e) = read.next().await.expect("next") {
                std::hint::black_box(&e);
                n += 1;
            }
            assert_eq!(n, READ_EVENTS);
        })
    });
    g.bench_function(BenchmarkId::new("backend", "$all page"), |b| {
        b.to_async(&rt).iter(|| async {
            let events = store
                .read_all(Position(all_from.0), READ_EVENTS)
                .await
                .expect("read all");
            assert_eq!(events.len(), READ_EVENTS);
        })
    });
    g.bench_function(BenchmarkId::new("client", "$all page"), |b| {
        b.to_async(&rt).iter(|| async {
            let options = kurrentdb::ReadAllOptions::default()
                .position(kurrentdb::StreamPosition::Position(kurrentdb::Position {
                    commit: all_commit,
                    prepare: all_commit,
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
            // The page starts just after the head event the backend skips.
            assert!(n >= READ_EVENTS);
        })
    });
    g.finish();
    drop(store);
    drop(client);
    rt.shutdown_background();
    drop(server);
}

criterion_group!(benches, esdb);
criterion_main!(benches);
