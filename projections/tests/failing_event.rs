//! An event that does not apply stops the projection with an error naming
//! its position and type; nothing of its batch is written and nothing after
//! it is skipped to.

use neonhub_events::{
    EventData, EventId, ExpectedRevision, Metadata, Position, RunEvent, RunId, RunSucceeded,
    StreamId, Timestamp, encode_payload, event_types,
};
use neonhub_projections::{AgentRunsProjection, Error, Projection, ProjectionRunner};
use neonhub_test_support::projections as support;

async fn append_raw(
    log: &support::TestLog,
    stream: &StreamId,
    event_type: &str,
    payload: Vec<u8>,
) -> Position {
    log.store
        .append(
            stream,
            ExpectedRevision::Any,
            vec![EventData {
                id: EventId::new(),
                event_type: event_type.to_owned(),
                metadata: Metadata::default(),
                payload,
            }],
        )
        .await
        .unwrap()
        .first_position
}

async fn expect_stop(log: &support::TestLog, name: &str, position: Position, event_type: &str) {
    let db = log.db(name);
    let mut runner =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap())
            .with_batch_size(10);
    match runner.catch_up().await {
        Err(Error::Apply {
            position: p,
            event_type: t,
            reason,
            ..
        }) => {
            assert_eq!(p, position, "{reason}");
            assert_eq!(t, event_type);
        }
        other => panic!("expected an Apply error at {position}, got {other:?}"),
    }
    // Stopped at the start of the failing batch: the table is the prefix
    // before it, and a restart fails again at the same event.
    let checkpoint = runner.projection().checkpoint();
    assert!(checkpoint <= position && position.0 - checkpoint.0 < 10);
    assert!(
        support::rows(&db)
            .iter()
            .all(|r| r.last_position < checkpoint)
    );
    drop(runner);
    let mut again =
        ProjectionRunner::new(log.store.clone(), AgentRunsProjection::open(&db).unwrap());
    assert!(
        matches!(again.catch_up().await, Err(Error::Apply { position: p, .. }) if p == position)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_stops_the_projection_naming_position_and_type() {
    let mut log = support::TestLog::open();
    let events = support::events(40, 9);
    log.append(&events).await;

    // A stream that is not a run stream is passed over.
    append_raw(
        &log,
        &StreamId::new("orders-1").unwrap(),
        "order.placed.v1",
        vec![1, 2],
    )
    .await;

    // A terminal event for a run that never started.
    let orphan = RunId::new();
    let bad = append_raw(
        &log,
        &orphan.stream(),
        event_types::RUN_SUCCEEDED,
        encode_payload(&RunEvent::Succeeded(RunSucceeded {
            run_id: orphan,
            attempt: 1,
            output: serde_json::json!(null),
            duration_micros: 5,
            finished_at: Timestamp(5),
        }))
        .unwrap(),
    )
    .await;
    log.append(&support::events(5, 10)).await;
    expect_stop(&log, "orphan.sqlite", bad, event_types::RUN_SUCCEEDED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_or_unknown_event_stops_the_projection() {
    let mut log = support::TestLog::open();
    log.append(&support::events(20, 4)).await;
    let garbled = append_raw(
        &log,
        &RunId::new().stream(),
        event_types::RUN_STARTED,
        b"\xc1nope".to_vec(),
    )
    .await;
    log.append(&support::events(3, 8)).await;
    expect_stop(&log, "garbled.sqlite", garbled, event_types::RUN_STARTED).await;

    let mut log = support::TestLog::open();
    log.append(&support::events(20, 4)).await;
    let unknown = append_raw(&log, &RunId::new().stream(), "run.paused.v1", vec![0x80]).await;
    expect_stop(&log, "unknown.sqlite", unknown, "run.paused.v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_first_start_of_a_run_stops_the_projection() {
    let mut log = support::TestLog::open();
    let events = support::events(30, 2);
    log.append(&events).await;
    // Replays the first RunStarted of a run already in the log, in its own
    // stream (as a bad import would).
    let RunEvent::Started(first) = events[0].clone() else {
        panic!("fixtures start with a RunStarted");
    };
    let dup = append_raw(
        &log,
        &first.run_id.stream(),
        event_types::RUN_STARTED,
        encode_payload(&RunEvent::Started(first)).unwrap(),
    )
    .await;
    expect_stop(&log, "dup.sqlite", dup, event_types::RUN_STARTED).await;
}
