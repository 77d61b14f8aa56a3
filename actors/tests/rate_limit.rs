//! Calls over a connector's rate limit wait for their turn instead of
//! failing: given a Slack connector limited to bursts of 2 and one call
//! every 50 ms, when 10 notifications are sent at once, then all succeed,
//! paced. A permit that would come only after the run's deadline fails the
//! call `rate_limited` at once; and a limit per key (Slack: per channel)
//! holds each channel to its own pace. A call cut off while it waits is
//! recorded only then, as a step that started and was cancelled.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use neonhub_actors::{
    AgentOptions, CancelRun, ConnectorOptions, OrchestratorBuilder, RateLimit, Slack, StartRun,
    SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::json;

fn limit(burst: u32, every: Duration) -> Option<RateLimit> {
    Some(RateLimit {
        burst: NonZeroU32::new(burst).unwrap(),
        replenish_every: every,
    })
}

fn notify(channel: &str, n: u32) -> SubmitRun {
    SubmitRun::intent(
        "slack.notify",
        json!({"channel": channel, "text": format!("note {n}")}),
    )
}

#[actix::test]
async fn calls_over_the_limit_wait_for_their_turn_and_succeed() {
    let (_dir, store) = support::store();
    let options = ConnectorOptions {
        rate_limit: limit(2, Duration::from_millis(50)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(Slack::mock(), options)
        .start()
        .unwrap();

    let began = Instant::now();
    let runs = join_all((0..10).map(|n| orchestrator.send(notify("C1", n)))).await;

    for run in runs {
        let run = run.unwrap().unwrap();
        assert!(run.is_success(), "{:?}", run.result);
    }
    // 2 at once, then 8 more at one per 50 ms.
    assert!(
        began.elapsed() >= Duration::from_millis(350),
        "{:?}",
        began.elapsed()
    );
}

#[actix::test]
async fn a_permit_past_the_deadline_fails_rate_limited_at_once() {
    let (_dir, store) = support::store();
    let options = ConnectorOptions {
        rate_limit: limit(2, Duration::from_secs(3600)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            || neonhub_actors::SlackAgent,
            AgentOptions {
                timeout: Duration::from_secs(30),
                ..AgentOptions::default()
            },
        )
        .connector(Slack::mock(), options)
        .start()
        .unwrap();

    let first = orchestrator.send(notify("C1", 1)).await.unwrap().unwrap();
    let second = orchestrator.send(notify("C1", 2)).await.unwrap().unwrap();
    let began = Instant::now();
    let third = orchestrator.send(notify("C1", 3)).await.unwrap().unwrap();

    assert!(first.is_success() && second.is_success());
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let error = third.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert!(error.message.contains("deadline"), "{}", error.message);
    let children = support::child_runs(&store, third.run_id).await;
    assert_eq!(
        support::shape(&support::events(&store, children[0]).await),
        ["started#1", "failed#1(rate_limited)"],
    );
}

#[actix::test]
async fn each_channel_has_a_limit_of_its_own() {
    let (_dir, store) = support::store();
    let options = ConnectorOptions {
        key_rate_limit: limit(1, Duration::from_secs(3600)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(Slack::mock(), options)
        .start()
        .unwrap();

    let c1 = orchestrator.send(notify("C1", 1)).await.unwrap().unwrap();
    let c2 = orchestrator.send(notify("C2", 1)).await.unwrap().unwrap();
    let c1_again = orchestrator.send(notify("C1", 2)).await.unwrap().unwrap();

    assert!(c1.is_success() && c2.is_success(), "{c1:?} {c2:?}");
    let error = c1_again.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert!(error.message.contains("C1"), "{}", error.message);
}

#[actix::test]
async fn a_call_cancelled_while_it_waits_is_recorded_then_as_cancelled() {
    let (_dir, store) = support::store();
    // One call, then the next permit in 10 s: within the run's 30 s.
    let options = ConnectorOptions {
        rate_limit: limit(1, Duration::from_secs(10)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(
            || neonhub_actors::SlackAgent,
            AgentOptions {
                timeout: Duration::from_secs(30),
                ..AgentOptions::default()
            },
        )
        .connector(Slack::mock(), options)
        .start()
        .unwrap();
    let first = orchestrator.send(notify("C1", 1)).await.unwrap().unwrap();
    assert!(first.is_success());
    let ticket = orchestrator
        .send(StartRun(notify("C1", 2)))
        .await
        .unwrap()
        .unwrap();
    let run_id = ticket.run_id();
    let waiting = orchestrator.clone();
    support::wait_until("the second call to wait for its permit", move || {
        let orchestrator = waiting.clone();
        async move {
            let stats = orchestrator.send(neonhub_actors::GetStats).await.unwrap();
            stats.in_flight == 1
        }
    })
    .await;
    // Its turn is 10 s away; give it time to queue.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        support::child_runs(&store, run_id).await.is_empty(),
        "a step waiting for its permit is not recorded yet"
    );

    let began = Instant::now();
    orchestrator
        .send(CancelRun {
            run_id,
            reason: None,
        })
        .await
        .unwrap()
        .expect("the run is in flight");
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.outcome())
        .await
        .expect("the cancelled run ends at once")
        .unwrap();

    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Cancelled);
    let children = support::child_runs(&store, run_id).await;
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(
        support::shape(&support::events(&store, children[0]).await),
        ["started#1", "failed#1(cancelled)"],
    );
}
