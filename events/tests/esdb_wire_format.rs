//! What the backend stores, as any EventStoreDB client sees it: our event
//! ids (so a retried append is idempotent), the MessagePack payload with a
//! binary content type, correlation and causation as JSON custom metadata;
//! and what it reads: system streams and events never show up in `read_all`
//! or subscriptions.
#![cfg(feature = "eventstoredb")]

use std::time::Duration;

use neonhub_esdb_test_server::TestServer;
use neonhub_events::{
    Codec, EsdbStore, EventData, EventId, EventStore, ExpectedRevision, Metadata, Position,
    Revision, RunEvent, RunId, RunKind, RunStarted, Timestamp,
};
use neonhub_test_support::unique_stream;
use uuid::Uuid;

fn run_started(run: RunId) -> EventData {
    let started = RunEvent::Started(RunStarted {
        run_id: run,
        kind: RunKind::Agent,
        target: "echo".into(),
        operation: "run".into(),
        intent: None,
        input: serde_json::json!({"text": "hi"}),
        attempt: 1,
        parent_run_id: None,
        correlation_id: Uuid::now_v7(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: None,
        resumed: false,
        node: None,
        paused_micros: 0,
    });
    let metadata = Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
    };
    Codec::new().encode(&started, metadata).expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_with_our_ids_binary_payloads_and_json_metadata() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&server.url()).unwrap();
    let run = RunId::new();
    let sent = run_started(run);
    let first = store
        .append(
            &run.stream(),
            ExpectedRevision::NoStream,
            vec![sent.clone()],
        )
        .await
        .unwrap();
    // A retry of the same append (same event id) is idempotent.
    let again = store
        .append(
            &run.stream(),
            ExpectedRevision::NoStream,
            vec![sent.clone()],
        )
        .await
        .expect("idempotent retry");
    assert_eq!(again, first);

    let raw = kurrentdb::Client::new(server.url().parse().unwrap()).unwrap();
    let mut read = raw
        .read_stream(run.stream().as_str(), &Default::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(e) = read.next().await.unwrap() {
        got.push(e.event.expect("an event, not a link"));
    }
    assert_eq!(got.len(), 1, "the retry wrote a second copy");
    let e = &got[0];
    assert_eq!(e.id, *sent.id.as_uuid());
    assert_eq!(e.event_type, sent.event_type);
    assert!(!e.is_json);
    assert_eq!(
        e.metadata.get("content-type").map(String::as_str),
        Some("application/octet-stream")
    );
    assert_eq!(&e.data[..], &sent.payload[..]);
    let custom: serde_json::Value = serde_json::from_slice(&e.custom_metadata).unwrap();
    assert_eq!(
        custom["$correlationId"],
        sent.metadata.correlation_id.unwrap().to_string()
    );
    assert_eq!(
        custom["$causationId"],
        sent.metadata.causation_id.unwrap().to_string()
    );
    // And it decodes back to the run event.
    let ours = store
        .read_all(first.first_position, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(ours.revision, Revision(0));
    assert_eq!(ours.metadata, sent.metadata);
    assert!(ours.recorded_at.as_micros() > 0);
    assert_eq!(Codec::new().decode(&ours).unwrap().run_id(), run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_streams_and_events_are_left_out_of_read_all_and_subscriptions() {
    let server = TestServer::start().unwrap();
    let store = EsdbStore::connect(&server.url()).unwrap();
    let s = unique_stream("sys");
    let mut sub = store.subscribe_all(Position::START).await.unwrap();
    for i in 0..6u8 {
        server.append_system_event();
        store
            .append(
                &s,
                ExpectedRevision::Any,
                vec![EventData {
                    id: EventId::new(),
                    event_type: "sys.v1".into(),
                    metadata: Metadata::default(),
                    payload: vec![i],
                }],
            )
            .await
            .unwrap();
    }
    server.append_system_event();
    // The server holds the seeded and appended system events...
    assert!(server.event_count() >= 6 + 7);
    // ...but neither reads nor subscriptions hand them out.
    let all = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|e| e.stream == s));
    // Paging one at a time skips them too.
    let mut at = Position::START;
    let mut paged = Vec::new();
    while let Some(e) = store.read_all(at, 1).await.unwrap().pop() {
        at = e.position.next();
        paged.push(e.payload[0]);
    }
    assert_eq!(paged, [0, 1, 2, 3, 4, 5]);
    for i in 0..6u8 {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("subscription stalled")
            .unwrap();
        assert_eq!((e.stream.clone(), e.payload[0]), (s.clone(), i));
    }
    // The head is past the last event of any kind, so nothing of ours is
    // at or after it.
    let head = store.head().await.unwrap();
    assert!(head > all.last().unwrap().position);
    assert!(store.read_all(head, 10).await.unwrap().is_empty());
}
