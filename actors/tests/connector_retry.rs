//! Given live Slack against a local server that fails once with HTTP 503
//! (come back later: the post had no effect, so resending cannot duplicate
//! it; a 500 could have, see `unsafe_steps_are_never_resent.rs`), when a
//! message is posted, then the child run records the retry
//! (failed#1 will retry, started#2) and succeeds on attempt 2, while the
//! agent run sees one successful call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use neonhub_actors::{
    ConnectorOptions, OrchestratorBuilder, RetryPolicy, Secret, Slack, SubmitRun,
};
use neonhub_events::RunEvent;
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::json;

#[actix::test]
async fn a_transient_failure_is_retried_inside_the_child_run() {
    let (_dir, store) = support::store();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let server = TestServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            (503, "{}".to_owned())
        } else {
            (
                200,
                json!({"ok": true, "channel": "C1", "ts": "1700000000.000100"}).to_string(),
            )
        }
    });
    let options = ConnectorOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(5)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Slack::live(&server.base_url, Secret::new("xoxb-test")),
            options,
        )
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::intent(
            "slack.notify",
            json!({"channel": "C1", "text": "hello"}),
        ))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        outcome.result.clone().unwrap()["ts"],
        json!("1700000000.000100")
    );
    assert_eq!(
        support::shape(&support::events(&store, outcome.run_id).await),
        ["started#1", "succeeded#1"]
    );
    let child = support::child_runs(&store, outcome.run_id).await[0];
    let events = support::events(&store, child).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(connector, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
    let RunEvent::Failed(f) = &events[1] else {
        panic!()
    };
    assert!(f.error.message.contains("503"), "{}", f.error.message);
    support::assert_contiguous(&support::recorded(&store, child).await);
    assert_eq!(server.hits(), 2);
    server.stop().await;
}
