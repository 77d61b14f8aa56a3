//! The circuit breaker counts only the vendor's failures, against local
//! servers standing in for the vendors:
//! - five 429s (the vendor pacing us) do not open Slack's breaker;
//! - a slow success that started before Gmail's breaker opened leaves it
//!   open;
//! - half-open lets exactly one probe through while it is on the wire;
//! - Twilio's Messages and Lookup have breakers of their own.
//!
//! Nothing here waits on real time: the connector's breakers read a
//! [`ManualClock`] the test moves past the cool-down, and a slow answer is
//! held by a [`Gate`] the test opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use neonhub_actors::{
    BreakerConfig, BreakerState, ConnectorHealth, ConnectorOptions, Gmail, ManualClock,
    OrchestratorBuilder, RetryPolicy, Secret, Slack, SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::http::{Gate, Reply, TestServer};
use neonhub_test_support::{Proxy, proxy_orchestrator, twilio_at};
use serde_json::json;

fn breaker(failure_threshold: u32, open_for: Duration) -> ConnectorOptions {
    ConnectorOptions {
        retry: RetryPolicy::none(),
        breaker: BreakerConfig {
            failure_threshold,
            open_for,
        },
        ..ConnectorOptions::default()
    }
}

/// [`breaker`], counting its cool-down in `clock`.
fn breaker_on(failure_threshold: u32, open_for: Duration, clock: &ManualClock) -> ConnectorOptions {
    ConnectorOptions {
        clock: clock.clone().into(),
        ..breaker(failure_threshold, open_for)
    }
}

fn email(subject: &str) -> SubmitRun {
    SubmitRun::intent(
        "email.send",
        json!({"to": "a@example.com", "subject": subject, "body": "B"}),
    )
}

fn sent() -> String {
    json!({"id": "m1", "threadId": "t1"}).to_string()
}

#[actix::test]
async fn five_429s_do_not_open_the_breaker() {
    let (_dir, store) = support::store();
    let server =
        TestServer::start(|_| (429, r#"{"ok": false, "error": "ratelimited"}"#.to_owned()));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Slack::live(&server.base_url, Secret::new("xoxb-test")),
            breaker(2, Duration::from_secs(60)),
        )
        .start()
        .unwrap();

    let mut kinds = Vec::new();
    for n in 1..=5 {
        let run = orchestrator
            .send(SubmitRun::intent(
                "slack.notify",
                json!({"channel": "C1", "text": format!("note {n}")}),
            ))
            .await
            .unwrap()
            .unwrap();
        let error = run.result.clone().unwrap_err();
        assert_eq!(
            server.hits(),
            n,
            "call {n} did not reach the vendor: {error:?}"
        );
        kinds.push(error.kind);
    }
    assert_eq!(
        kinds,
        [ErrorKind::RateLimited; 5],
        "a 429 is recorded rate_limited"
    );

    let health = orchestrator
        .send(ConnectorHealth {
            connector: "slack".into(),
        })
        .await
        .unwrap();
    assert_eq!(health, Some(BreakerState::Closed));
    server.stop().await;
}

#[actix::test]
async fn a_slow_success_started_before_the_breaker_opened_leaves_it_open() {
    let (_dir, store) = support::store();
    // The slow success is held on the wire until the breaker has opened.
    let gate = Gate::new();
    let held = gate.clone();
    let server = TestServer::start_replying(move |request| {
        if request.body.contains("slow") || base64_has(&request.body, "slow") {
            Reply::new(200, sent()).until(&held)
        } else {
            Reply::new(503, r#"{"error": "backend down"}"#)
        }
    });
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Gmail::live(&server.base_url, Secret::new("tok-123")),
            breaker(2, Duration::from_secs(60)),
        )
        .start()
        .unwrap();
    let health = || {
        orchestrator.send(ConnectorHealth {
            connector: "gmail".into(),
        })
    };

    let slow = orchestrator.send(email("slow"));
    let slow = actix::spawn(slow);
    support::wait_until_within(
        "the slow send to reach the vendor",
        Duration::from_secs(5),
        || {
            let hits = server.hits();
            async move { hits == 1 }
        },
    )
    .await;
    for _ in 0..2 {
        let run = orchestrator.send(email("fails")).await.unwrap().unwrap();
        assert_eq!(run.result.clone().unwrap_err().kind, ErrorKind::Connector);
    }
    assert_eq!(health().await.unwrap(), Some(BreakerState::Open));
    assert!(!slow.is_finished(), "the slow send is still on the wire");

    gate.open();
    let slow = slow.await.unwrap().unwrap().unwrap();
    assert!(slow.is_success(), "{slow:?}");
    assert_eq!(
        health().await.unwrap(),
        Some(BreakerState::Open),
        "a success that began before the breaker opened says nothing about the vendor now"
    );
    let fast = orchestrator.send(email("after")).await.unwrap().unwrap();
    assert_eq!(
        fast.result.clone().unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(server.hits(), 3);
    server.stop().await;
}

/// Whether the Gmail `raw` field (base64url of the message) in `body`
/// holds `text`.
fn base64_has(body: &str, text: &str) -> bool {
    use base64::Engine;
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let raw = json["raw"].as_str().unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .unwrap_or_default();
    String::from_utf8_lossy(&decoded).contains(text)
}

#[actix::test]
async fn half_open_lets_exactly_one_probe_through() {
    let (_dir, store) = support::store();
    let clock = ManualClock::new();
    let healthy = Arc::new(AtomicBool::new(false));
    // The probe's answer is held until every other call has been refused.
    let gate = Gate::new();
    let (flag, held) = (Arc::clone(&healthy), gate.clone());
    let server = TestServer::start_replying(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::new(200, sent()).until(&held)
        } else {
            Reply::new(503, r#"{"error": "backend down"}"#)
        }
    });
    let cool_down = Duration::from_secs(60);
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Gmail::live(&server.base_url, Secret::new("tok-123")),
            breaker_on(1, cool_down, &clock),
        )
        .start()
        .unwrap();
    let health = || {
        orchestrator.send(ConnectorHealth {
            connector: "gmail".into(),
        })
    };
    let opened = orchestrator.send(email("fails")).await.unwrap().unwrap();
    assert_eq!(
        opened.result.clone().unwrap_err().kind,
        ErrorKind::Connector
    );
    assert_eq!(health().await.unwrap(), Some(BreakerState::Open));
    clock.advance(cool_down - Duration::from_millis(1));
    assert_eq!(
        health().await.unwrap(),
        Some(BreakerState::Open),
        "still cooling down"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(health().await.unwrap(), Some(BreakerState::HalfOpen));
    healthy.store(true, Ordering::SeqCst);

    let runs: Vec<_> = (0..5)
        .map(|_| actix::spawn(orchestrator.send(email("probe"))))
        .collect();
    support::wait_until_within(
        "one probe on the wire and four calls refused",
        Duration::from_secs(10),
        || {
            let done = runs.iter().filter(|run| run.is_finished()).count();
            let hits = server.hits();
            async move { hits == 2 && done == 4 }
        },
    )
    .await;
    gate.open();
    let mut kinds = Vec::new();
    for run in runs {
        let run = run.await.unwrap().unwrap().unwrap();
        kinds.push(run.result.clone().err().map(|e| e.kind));
    }

    assert_eq!(server.hits(), 2, "the failure, then one probe: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.is_none()).count(), 1, "{kinds:?}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == Some(ErrorKind::CircuitOpen))
            .count(),
        4,
        "{kinds:?}"
    );
    assert_eq!(health().await.unwrap(), Some(BreakerState::Closed));
    server.stop().await;
}

#[actix::test]
async fn twilio_messages_and_lookup_have_breakers_of_their_own() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|request| {
        if request.path.contains("PhoneNumbers") {
            (
                200,
                json!({"phone_number": "+15551234567", "valid": true}).to_string(),
            )
        } else {
            (503, r#"{"code": 20003, "message": "down"}"#.to_owned())
        }
    });
    let orchestrator = proxy_orchestrator(
        &store,
        neonhub_actors::AgentOptions::default(),
        twilio_at(&server.base_url),
        breaker(1, Duration::from_secs(60)),
    );
    let send = orchestrator
        .send(Proxy::submit(
            "twilio",
            "send_sms",
            json!({"to": "+15551234567", "body": "hi"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(send.result.clone().unwrap_err().kind, ErrorKind::Connector);
    let again = orchestrator
        .send(Proxy::submit(
            "twilio",
            "send_sms",
            json!({"to": "+15551234567", "body": "hi"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.result.clone().unwrap_err().kind,
        ErrorKind::CircuitOpen
    );

    let lookup = orchestrator
        .send(Proxy::submit(
            "twilio",
            "validate_number",
            json!({"number": "+15551234567"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        lookup.is_success(),
        "Messages' breaker stops Lookup: {lookup:?}"
    );
    server.stop().await;
}
