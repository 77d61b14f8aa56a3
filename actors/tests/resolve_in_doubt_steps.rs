//! An operator settles a step that ended `in_doubt` (`ResolveStep`). Given
//! an SMS whose send got a 500 (it may have gone out), so that its run
//! ended `failed` with `in_doubt`:
//! - when the step is resolved `sent`, then the decision is appended to the
//!   step with who decided and why, the run is resumed, the step replays as
//!   sent and Twilio is not called again;
//! - when it is resolved `not_sent`, then the step is executed again, once;
//! - bad input (no such run, no such step, a step not in doubt, the other
//!   decision after one was recorded) is refused with a typed error and
//!   appends nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use neonhub_actors::{
    ConnectorOptions, Error, Orchestrator, OrchestratorBuilder, ResolveStep, RetryPolicy,
    RunOutcome, SubmitRun,
};
use neonhub_events::{RunEvent, RunId, RunStatus, SharedStore, StepOutcome};
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::json;

const STEP: &str = "twilio.send_sms#1";

/// Twilio that answers its first send with a 500 and every later one with
/// a queued message, and whose message list (the lookup of a step in
/// doubt) is empty: the vendor cannot say, so an operator decides.
fn flaky_twilio() -> TestServer {
    let sends = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |request| {
        if request.method == "GET" {
            (200, json!({"messages": []}).to_string())
        } else if sends.fetch_add(1, Ordering::SeqCst) == 0 {
            (500, "{}".to_owned())
        } else {
            (201, json!({"sid": "SM2", "status": "queued"}).to_string())
        }
    })
}

/// The SMS sends Twilio received (lookups are GETs).
fn sends(server: &TestServer) -> usize {
    server.count(|request| request.method == "POST")
}

/// An orchestrator with the built-in agents and Twilio at `server`, and a
/// run of the sms agent that ended in doubt.
async fn run_in_doubt(store: &SharedStore, server: &TestServer) -> (Addr<Orchestrator>, RunId) {
    let options = ConnectorOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(support::twilio_at(&server.base_url), options)
        .start()
        .unwrap();
    let outcome: RunOutcome = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "+15550001111", "body": "hello"}),
        ))
        .await
        .unwrap()
        .unwrap();
    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind.as_str(), "in_doubt", "{}", error.message);
    assert_eq!(sends(server), 1);
    (orchestrator, outcome.run_id)
}

fn resolve(run_id: RunId, step: &str, outcome: StepOutcome) -> ResolveStep {
    ResolveStep {
        run_id,
        step: step.to_owned(),
        outcome,
        decided_by: "dana".into(),
        reason: Some("checked the Twilio console".into()),
    }
}

/// Waits for run `run_id` to end again and returns its events' shape.
async fn settled(store: &SharedStore, run_id: RunId) -> Vec<String> {
    support::wait_until("the resumed run ended", || async {
        let events = support::events(store, run_id).await;
        events.last().is_some_and(|e| {
            matches!(e, RunEvent::Succeeded(_)) || matches!(e, RunEvent::Failed(f) if !f.will_retry)
        }) && events.len() > 2
    })
    .await;
    support::shape(&support::events(store, run_id).await)
}

#[actix::test]
async fn a_step_resolved_as_sent_replays_as_sent_and_is_not_sent_again() {
    let (_dir, store) = support::store();
    let server = flaky_twilio();
    let (orchestrator, run_id) = run_in_doubt(&store, &server).await;

    let attempt = orchestrator
        .send(resolve(run_id, STEP, StepOutcome::Sent))
        .await
        .unwrap()
        .expect("the step is in doubt");
    assert_eq!(attempt, 2);

    assert_eq!(
        settled(&store, run_id).await,
        [
            "started#1",
            "failed#1(in_doubt)",
            "started#2",
            "succeeded#2"
        ]
    );
    assert_eq!(sends(&server), 1, "a step resolved as sent was sent again");
    let step = support::events(&store, run_id.step(STEP)).await;
    assert_eq!(
        support::shape(&step),
        ["started#1", "failed#1(in_doubt)", "resolved(sent)"]
    );
    let RunEvent::StepResolved(decision) = step.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(decision.decided_by, "dana");
    assert_eq!(
        decision.reason.as_deref(),
        Some("checked the Twilio console")
    );
    let RunEvent::Started(resumed) = &support::events(&store, run_id).await[2] else {
        unreachable!()
    };
    assert!(resumed.resumed, "the new attempt is not marked as a resume");
}

#[actix::test]
async fn a_step_resolved_as_not_sent_is_sent_once_more() {
    let (_dir, store) = support::store();
    let server = flaky_twilio();
    let (orchestrator, run_id) = run_in_doubt(&store, &server).await;

    orchestrator
        .send(resolve(run_id, STEP, StepOutcome::NotSent))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        settled(&store, run_id).await,
        [
            "started#1",
            "failed#1(in_doubt)",
            "started#2",
            "succeeded#2"
        ]
    );
    assert_eq!(sends(&server), 2, "the step was not sent exactly once more");
    assert_eq!(
        support::shape(&support::events(&store, run_id.step(STEP)).await),
        [
            "started#1",
            "failed#1(in_doubt)",
            "resolved(not_sent)",
            "started#2",
            "succeeded#2"
        ]
    );
}

#[actix::test]
async fn bad_resolutions_are_refused_and_append_nothing() {
    let (_dir, store) = support::store();
    let server = flaky_twilio();
    let (orchestrator, run_id) = run_in_doubt(&store, &server).await;
    let head = store.head().await.unwrap();
    let refused = |r: Result<u32, Error>| r.expect_err("should be refused");

    let e = refused(
        orchestrator
            .send(resolve(RunId::new(), STEP, StepOutcome::Sent))
            .await
            .unwrap(),
    );
    assert!(matches!(e, Error::UnknownRun(_)), "{e:?}");
    let e = refused(
        orchestrator
            .send(resolve(run_id, "twilio.send_sms#2", StepOutcome::Sent))
            .await
            .unwrap(),
    );
    assert!(
        matches!(&e, Error::UnknownStep { step, .. } if step == "twilio.send_sms#2"),
        "{e:?}"
    );
    // The step's run id is not a run to resolve steps of.
    let e = refused(
        orchestrator
            .send(resolve(run_id.step(STEP), STEP, StepOutcome::Sent))
            .await
            .unwrap(),
    );
    assert!(matches!(e, Error::UnknownRun(_)), "{e:?}");
    assert_eq!(store.head().await.unwrap(), head, "a refusal appended");

    orchestrator
        .send(resolve(run_id, STEP, StepOutcome::Sent))
        .await
        .unwrap()
        .unwrap();
    settled(&store, run_id).await;
    let head = store.head().await.unwrap();
    // Decided, and the run is over: neither decision applies any more.
    for outcome in [StepOutcome::NotSent, StepOutcome::Sent] {
        let e = refused(
            orchestrator
                .send(resolve(run_id, STEP, outcome))
                .await
                .unwrap(),
        );
        assert!(
            matches!(
                e,
                Error::StepNotInDoubt {
                    status: RunStatus::Succeeded,
                    ..
                } | Error::RunFinished {
                    status: RunStatus::Succeeded,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(store.head().await.unwrap(), head, "a refusal appended");
}
