//! Encoding and decoding each run event type with the MessagePack codec.
//!
//! Run: `cargo bench --bench codec -- --noplot`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use neonhub_events::{
    Codec, ErrorKind, Metadata, Position, RecordedEvent, Revision, RunError, RunEvent, RunFailed,
    RunId, Timestamp,
};
use neonhub_test_support::workload;
use uuid::Uuid;

/// One realistic event of each type.
fn events() -> Vec<RunEvent> {
    let run_id = RunId::new();
    vec![
        workload::run_started(run_id, Uuid::now_v7()),
        workload::run_succeeded(run_id),
        RunEvent::Failed(RunFailed {
            run_id,
            attempt: 1,
            error: RunError::new(ErrorKind::Connector, "gmail: 503 Service Unavailable"),
            will_retry: true,
            retry_at: None,
            duration_micros: 30_001,
            finished_at: Timestamp::now(),
        }),
    ]
}

fn codec(c: &mut Criterion) {
    let codec = Codec::new();
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    for event in events() {
        let name = event.event_type();
        let data = codec.encode(&event, Metadata::default()).expect("encode");
        group.throughput(Throughput::Bytes(data.payload.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &event, |b, event| {
            b.iter(|| codec.encode(black_box(event), Metadata::default()));
        });
        let recorded = RecordedEvent {
            id: data.id,
            stream: event.run_id().stream(),
            revision: Revision::FIRST,
            position: Position::START,
            recorded_at: Timestamp::now(),
            event_type: data.event_type,
            metadata: data.metadata,
            payload: data.payload,
        };
        assert_eq!(codec.decode(&recorded).expect("decode"), event);
        group.bench_with_input(
            BenchmarkId::new("decode", name),
            &recorded,
            |b, recorded| {
                b.iter(|| codec.decode(black_box(recorded)));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
