//! Cancelling a run (`CancelRun`): given a run in flight, when it is
//! cancelled, then its attempt stops where it is, no retry follows, and the
//! run ends `failed` with kind `cancelled` and the reason; a step whose
//! request was on the wire is not resent and records how it ended before
//! the run's outcome. A run that does not exist, or already ended, is
//! refused with a typed error and nothing is appended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, CancelRun, ConnectorOptions, Error,
    OrchestratorBuilder, RetryPolicy, RunOutcome, StartRun, SubmitRun,
};
use neonhub_events::{RunId, RunStatus};
use neonhub_test_support as support;
use neonhub_test_support::Gated;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

fn cancelled(outcome: &RunOutcome) -> String {
    let error = outcome.result.clone().expect_err("the run should fail");
    assert_eq!(error.kind.as_str(), "cancelled", "{}", error.message);
    error.message
}

async fn wait_entered(gated: &Gated, n: u32) {
    let entered = Arc::clone(&gated.entered);
    support::wait_until("the run entered the agent", || {
        let entered = Arc::clone(&entered);
        async move { entered.load(Ordering::SeqCst) >= n }
    })
    .await;
}

#[actix::test]
async fn a_cancelled_run_ends_cancelled_with_its_reason_and_is_not_retried() {
    let (_dir, store) = support::store();
    let gated = Gated::new();
    let agent = gated.clone();
    let options = AgentOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(move || agent.clone(), options)
        .start()
        .unwrap();
    let ticket = orchestrator
        .send(StartRun(SubmitRun::agent("gated", json!({}))))
        .await
        .unwrap()
        .unwrap();
    let run_id = ticket.run_id();
    wait_entered(&gated, 1).await;

    orchestrator
        .send(CancelRun {
            run_id,
            reason: Some("wrong recipient".into()),
        })
        .await
        .unwrap()
        .expect("the run is in flight");
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.outcome())
        .await
        .expect("the cancelled run ends at once")
        .unwrap();

    let message = cancelled(&outcome);
    assert!(message.contains("wrong recipient"), "{message}");
    assert_eq!(
        support::shape(&support::events(&store, run_id).await),
        ["started#1", "failed#1(cancelled)"]
    );
    assert_eq!(gated.entered.load(Ordering::SeqCst), 1, "it was retried");

    // Over: cancelling again is refused with its status, nothing appended.
    let head = store.head().await.unwrap();
    let again = orchestrator
        .send(CancelRun {
            run_id,
            reason: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(
            again,
            Err(Error::RunFinished {
                status: RunStatus::Failed,
                ..
            })
        ),
        "{again:?}"
    );
    let unknown = orchestrator
        .send(CancelRun {
            run_id: RunId::new(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(matches!(unknown, Err(Error::UnknownRun(_))), "{unknown:?}");
    assert_eq!(store.head().await.unwrap(), head, "a refusal appended");
}

/// Fails retryably every time, so its run waits in backoff between attempts.
#[derive(Clone, Copy)]
struct AlwaysRetryable;

#[async_trait]
impl Agent for AlwaysRetryable {
    fn name(&self) -> &str {
        "always_retryable"
    }

    async fn run(&self, _input: Value, _ctx: AgentContext) -> Result<Value, AgentError> {
        Err(AgentError::retryable("not yet"))
    }
}

#[actix::test]
async fn a_run_waiting_to_retry_is_cancelled_without_another_attempt() {
    let (_dir, store) = support::store();
    let options = AgentOptions {
        retry: RetryPolicy::attempts(5, Duration::from_secs(30)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| AlwaysRetryable, options)
        .start()
        .unwrap();
    let ticket = orchestrator
        .send(StartRun(SubmitRun::agent("always_retryable", json!({}))))
        .await
        .unwrap()
        .unwrap();
    let run_id = ticket.run_id();
    // The first attempt failed; the run sleeps 30 s before the second.
    tokio::time::sleep(Duration::from_millis(200)).await;
    orchestrator
        .send(CancelRun {
            run_id,
            reason: None,
        })
        .await
        .unwrap()
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.outcome())
        .await
        .expect("the backoff does not hold the cancellation")
        .unwrap();
    cancelled(&outcome);
    assert_eq!(outcome.attempts, 1);
}

#[actix::test]
async fn a_step_on_the_wire_when_its_run_is_cancelled_is_not_resent_and_ends_first() {
    let (_dir, store) = support::store();
    // Twilio receives the SMS and answers after 30 s.
    let server = TestServer::start_slow(Duration::from_secs(30), |_| {
        (201, json!({"sid": "SM1", "status": "queued"}).to_string())
    });
    let connector = ConnectorOptions {
        timeout: Duration::from_secs(60),
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(support::twilio_at(&server.base_url), connector)
        .start()
        .unwrap();
    let ticket = orchestrator
        .send(StartRun(SubmitRun::intent(
            "sms.send",
            json!({"to": "+15550001111", "body": "cancel me"}),
        )))
        .await
        .unwrap()
        .unwrap();
    let run_id = ticket.run_id();
    support::wait_until("the SMS reached Twilio", || async { server.hits() == 1 }).await;

    orchestrator
        .send(CancelRun {
            run_id,
            reason: None,
        })
        .await
        .unwrap()
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.outcome())
        .await
        .expect("the run ends without waiting for Twilio")
        .unwrap();
    cancelled(&outcome);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.hits(), 1, "the SMS was sent again");

    let children = support::child_runs(&store, run_id).await;
    assert_eq!(children.len(), 1);
    let step = support::recorded(&store, children[0]).await;
    assert_eq!(
        support::shape(&support::events(&store, children[0]).await),
        ["started#1", "failed#1(in_doubt)"],
        "a request on the wire is in doubt, never resent"
    );
    let parent = support::recorded(&store, run_id).await;
    let outcome_at = parent.last().unwrap().position;
    assert!(
        step.iter().all(|e| e.position < outcome_at),
        "the step recorded after its run's outcome"
    );
}

#[actix::test]
async fn a_step_cut_off_before_its_request_left_is_executed_by_the_next_attempt() {
    let (_dir, store) = support::store();
    // Twilio asks to come back (503: nothing sent), then takes the SMS.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = TestServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            (503, "{}".to_owned())
        } else {
            (201, json!({"sid": "SM1", "status": "queued"}).to_string())
        }
    });
    // The step waits 30 s before its second request; the attempt times out
    // first and cuts it off in that wait.
    let connector = ConnectorOptions {
        retry: RetryPolicy::attempts(3, Duration::from_secs(30)),
        ..ConnectorOptions::default()
    };
    let agent = AgentOptions {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy::attempts(2, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| neonhub_test_support::Proxy, agent)
        .connector(support::twilio_at(&server.base_url), connector)
        .start()
        .unwrap();
    let outcome = orchestrator
        .send(neonhub_test_support::Proxy::submit(
            "twilio",
            "send_sms",
            json!({"to": "+15550001111", "body": "after a cut"}),
        ))
        .await
        .unwrap()
        .unwrap();

    assert!(outcome.is_success(), "{:?}", outcome.result);
    assert_eq!(outcome.attempts, 2);
    assert_eq!(server.hits(), 2, "one refused request, one send");
    let step = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(
        support::shape(&support::events(&store, step[0]).await),
        [
            "started#1",
            "failed#1(connector, will retry)",
            "started#2",
            "failed#2(cancelled)",
            "started#3",
            "succeeded#3"
        ],
        "the refused request is recorded before the wait; the cut ends the next request \
         before it left, in one append; the next attempt of the run sends it"
    );
}
