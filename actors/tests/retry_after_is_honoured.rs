//! Given live Slack against a local server that answers the first post
//! with HTTP 429 and `Retry-After: 1` (as Slack paces a channel), when a
//! message is posted, then it is sent again no sooner than the vendor said
//! (not after the connector's 5 ms backoff), and the child run records the
//! 429 as `rate_limited`; and a `Retry-After` past the run's deadline is not
//! waited: the step fails `rate_limited` at once, with one request sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use neonhub_actors::{
    AgentOptions, ConnectorOptions, OrchestratorBuilder, RetryPolicy, Secret, Slack, SlackAgent,
    SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::http::{Reply, TestServer};
use serde_json::json;

fn posted() -> String {
    json!({"ok": true, "channel": "C1", "ts": "1700000000.000100"}).to_string()
}

fn options() -> ConnectorOptions {
    ConnectorOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(5)),
        ..ConnectorOptions::default()
    }
}

fn notify() -> SubmitRun {
    SubmitRun::intent("slack.notify", json!({"channel": "C1", "text": "hello"}))
}

#[actix::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let (_dir, store) = support::store();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let server = TestServer::start_replying(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(429, r#"{"ok": false, "error": "ratelimited"}"#).header("Retry-After", "1")
        } else {
            Reply::new(200, posted())
        }
    });
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Slack::live(&server.base_url, Secret::new("xoxb-test")),
            options(),
        )
        .start()
        .unwrap();

    let outcome = orchestrator.send(notify()).await.unwrap().unwrap();

    assert!(outcome.is_success(), "{outcome:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "sent again {gap:?} after a 429 that said Retry-After: 1"
    );
    let child = support::child_runs(&store, outcome.run_id).await[0];
    assert_eq!(
        support::shape(&support::events(&store, child).await),
        [
            "started#1",
            "failed#1(rate_limited, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
    server.stop().await;
}

#[actix::test]
async fn a_retry_after_past_the_deadline_is_not_waited() {
    let (_dir, store) = support::store();
    let server = TestServer::start_replying(|_| {
        Reply::new(429, r#"{"ok": false, "error": "ratelimited"}"#).header("Retry-After", "120")
    });
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            || SlackAgent,
            AgentOptions {
                timeout: Duration::from_secs(10),
                ..AgentOptions::default()
            },
        )
        .connector(
            Slack::live(&server.base_url, Secret::new("xoxb-test")),
            options(),
        )
        .start()
        .unwrap();

    let began = Instant::now();
    let outcome = orchestrator.send(notify()).await.unwrap().unwrap();

    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited, "{error:?}");
    assert!(error.message.contains("deadline"), "{}", error.message);
    assert_eq!(server.hits(), 1);
    let child = support::child_runs(&store, outcome.run_id).await[0];
    assert_eq!(
        support::shape(&support::events(&store, child).await),
        ["started#1", "failed#1(rate_limited)"]
    );
    server.stop().await;
}
