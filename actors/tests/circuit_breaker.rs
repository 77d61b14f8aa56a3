//! Given live Gmail against a local server that answers 503, and a breaker
//! that opens after two failures, when runs keep coming, then the breaker
//! opens (calls fail fast with `circuit_open` without reaching the server),
//! half-opens after its cool-down, and a successful probe closes it. The
//! breaker reads a [`ManualClock`] the test moves past the cool-down: no
//! real time is waited.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use neonhub_actors::{
    BreakerConfig, BreakerState, ConnectorHealth, ConnectorOptions, Gmail, ManualClock,
    OrchestratorBuilder, RetryPolicy, Secret, SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::json;

#[actix::test]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let (_dir, store) = support::store();
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let server = TestServer::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            (200, json!({"id": "m1", "threadId": "t1"}).to_string())
        } else {
            (503, json!({"error": "backend down"}).to_string())
        }
    });
    let clock = ManualClock::new();
    let cool_down = Duration::from_secs(30);
    let options = ConnectorOptions {
        retry: RetryPolicy::none(),
        breaker: BreakerConfig {
            failure_threshold: 2,
            open_for: cool_down,
        },
        clock: clock.clone().into(),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Gmail::live(&server.base_url, Secret::new("tok-123")),
            options,
        )
        .start()
        .unwrap();
    let email = || {
        SubmitRun::intent(
            "email.send",
            json!({"to": "a@example.com", "subject": "S", "body": "B"}),
        )
    };
    let health = || {
        orchestrator.send(ConnectorHealth {
            connector: "gmail".into(),
        })
    };
    let child_shape = |run| {
        let store = store.clone();
        async move {
            let children = support::child_runs(&store, run).await;
            assert_eq!(children.len(), 1);
            support::shape(&support::events(&store, children[0]).await)
        }
    };

    // Two failures reach the server and open the breaker.
    for expected_hits in 1..=2 {
        let run = orchestrator.send(email()).await.unwrap().unwrap();
        assert_eq!(run.result.clone().unwrap_err().kind, ErrorKind::Connector);
        assert_eq!(
            child_shape(run.run_id).await,
            ["started#1", "failed#1(connector)"]
        );
        assert_eq!(server.hits(), expected_hits);
    }
    assert_eq!(health().await.unwrap(), Some(BreakerState::Open));

    // Open: fails fast, the server is not called.
    let fast = orchestrator.send(email()).await.unwrap().unwrap();
    assert_eq!(
        fast.result.clone().unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(
        support::shape(&support::events(&store, fast.run_id).await),
        ["started#1", "failed#1(circuit_open)"]
    );
    assert_eq!(
        child_shape(fast.run_id).await,
        ["started#1", "failed#1(circuit_open)"]
    );
    assert_eq!(server.hits(), 2);

    // After the cool-down it half-opens; a good probe closes it.
    clock.advance(cool_down);
    assert_eq!(health().await.unwrap(), Some(BreakerState::HalfOpen));
    healthy.store(true, Ordering::SeqCst);
    let probe = orchestrator.send(email()).await.unwrap().unwrap();
    assert!(probe.is_success(), "{probe:?}");
    assert_eq!(
        child_shape(probe.run_id).await,
        ["started#1", "succeeded#1"]
    );
    assert_eq!(server.hits(), 3);
    assert_eq!(health().await.unwrap(), Some(BreakerState::Closed));
    assert_eq!(
        orchestrator
            .send(ConnectorHealth {
                connector: "fax".into()
            })
            .await
            .unwrap(),
        None
    );
    server.stop().await;
}
