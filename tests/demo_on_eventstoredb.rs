//! `neonhub demo` with the store given by the environment
//! (`NEONHUB_STORE=eventstoredb`, `NEONHUB_EVENTSTORE_URL`): the workload runs
//! on EventStoreDB (the in-process test server), the output says where the
//! events live, and `audit verify` then passes on what it left.

use neonhub_esdb_test_server::TestServer;
use neonhub_test_support::service::{neonhub, stdout};

#[test]
fn demo_on_eventstoredb_from_the_environment() {
    let server = TestServer::start().expect("start the EventStoreDB test server");
    let seeded = server.event_count();
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        neonhub()
            .env("NEONHUB_STORE", "eventstoredb")
            .env("NEONHUB_EVENTSTORE_URL", server.url())
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let text = stdout(&command(&["demo", "--runs", "30"]));
    assert!(text.contains("30 runs in"), "{text}");
    assert!(
        text.contains(&format!("EventStoreDB at {}", server.url())),
        "{text}"
    );
    assert!(
        !dir.path().join(neonhub::LOG_DIR).exists(),
        "no embedded log was written"
    );
    assert!(
        server.event_count() >= seeded + 60,
        "the events are in EventStoreDB"
    );
    let audit = stdout(&command(&["audit", "verify"]));
    assert!(
        audit.starts_with("ok (eventstoredb: no hash chain"),
        "{audit}"
    );
}
