//! Given a Slack connector limited to a burst of two calls, when three
//! notifications are sent at once, then the third call fails fast with
//! `rate_limited` in its child run and in the agent run.

use std::num::NonZeroU32;
use std::time::Duration;

use neonhub_actors::{ConnectorOptions, OrchestratorBuilder, RateLimit, Slack, SubmitRun};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn calls_past_the_rate_limit_fail_fast_with_rate_limited() {
    let (_dir, store) = support::store();
    let options = ConnectorOptions {
        rate_limit: RateLimit {
            burst: NonZeroU32::new(2).unwrap(),
            replenish_every: Duration::from_secs(3600),
        },
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(Slack::mock(), options)
        .start()
        .unwrap();
    let notify = |n: u32| {
        SubmitRun::intent(
            "slack.notify",
            json!({"channel": "C1", "text": format!("note {n}")}),
        )
    };

    let first = orchestrator.send(notify(1)).await.unwrap().unwrap();
    let second = orchestrator.send(notify(2)).await.unwrap().unwrap();
    let third = orchestrator.send(notify(3)).await.unwrap().unwrap();

    assert!(first.is_success() && second.is_success());
    let error = third.result.clone().unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(
        support::shape(&support::events(&store, third.run_id).await),
        ["started#1", "failed#1(rate_limited)"]
    );
    let children = support::child_runs(&store, third.run_id).await;
    assert_eq!(
        support::shape(&support::events(&store, children[0]).await),
        ["started#1", "failed#1(rate_limited)"],
        "fails fast: no retry although the connector's policy allows three attempts"
    );
}
