//! On EventStoreDB the service holds its data directory's lock: a second
//! `run` on the same directory is refused with a clear error while `runs
//! list` reads the table beside it; and a fresh store (whose head lies past
//! system events neonhub never sees) neither stalls "caught up" nor
//! shutdown.

use std::time::{Duration, Instant};

use neonhub::{EventStoreUrl, StoreConfig};
use neonhub_esdb_test_server::TestServer;
use neonhub_events::{Position, event_types};
use neonhub_test_support::service::{InProcess, neonhub, run_body};
use serde_json::{Value, json};

/// Far longer than any of these takes, far shorter than the 30 s a stalled
/// wait would last.
const PROMPT: Duration = Duration::from_secs(15);

#[actix_rt::test]
async fn one_writer_per_data_dir_and_a_fresh_store_is_caught_up() {
    let server = TestServer::start().expect("start the EventStoreDB test server");
    let url = server.url();
    let store = StoreConfig::EventStoreDb {
        url: EventStoreUrl::new(url.clone()).unwrap(),
    };
    let hub = InProcess::start_with(|o| neonhub::ServiceOptions { store, ..o }, |c| c).await;
    assert!(
        hub.service.store().head().await.unwrap().0 > 0,
        "the test server starts with system events"
    );
    // No run yet, only this node's lease renewals: the table is caught up
    // at once, past them.
    let checkpoint = tokio::time::timeout(PROMPT, hub.service.caught_up())
        .await
        .expect("caught_up stalled on a store holding only system events and leases")
        .unwrap();
    let node = hub.service.node().expect("a node on EventStoreDB").clone();
    let ours = hub
        .service
        .store()
        .read_all(Position::START, 1000)
        .await
        .unwrap();
    let before: Vec<_> = ours.iter().filter(|e| e.position < checkpoint).collect();
    assert!(
        !before.is_empty(),
        "the first renewal is before the checkpoint"
    );
    for event in &before {
        assert_eq!(event.stream, node.lease_stream(), "{event:?}");
        assert_eq!(event.event_type, event_types::LEASE_RENEWED, "{event:?}");
    }
    assert_eq!(checkpoint, before.last().unwrap().position.next());

    let (status, answer) = hub
        .post_run(&run_body("echo", json!({"hello": "esdb"})))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "succeeded");
    tokio::time::timeout(PROMPT, hub.service.caught_up())
        .await
        .expect("caught_up stalled")
        .unwrap();

    let data = hub.dir.path().to_owned();
    let cli = |args: &[&str]| {
        neonhub()
            .arg("--data-dir")
            .arg(&data)
            .args(["--store", "eventstoredb", "--eventstore-url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    // A second writer of the same table is refused, naming the lock.
    let out = cli(&["run", "echo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert!(stderr.contains(neonhub::DATA_LOCK_FILE), "{stderr}");
    // Reading beside the service works: it keeps the table current.
    let out = cli(&["runs", "list", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["runs"][0]["run_id"], answer["run_id"], "{listed}");

    let began = Instant::now();
    hub.server.stop().await.unwrap();
    let report = tokio::time::timeout(PROMPT, hub.service.shutdown(Duration::from_secs(30)))
        .await
        .expect("shutdown stalled")
        .unwrap();
    assert!(report.interrupted.is_empty());
    assert!(began.elapsed() < PROMPT);

    // Once it has stopped, the directory is free for the next writer.
    let out = cli(&["run", "echo", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
