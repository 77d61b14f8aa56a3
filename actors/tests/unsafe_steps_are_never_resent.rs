//! A side effect happens at most once. Against local servers standing in for
//! Twilio and Slack that count requests:
//! - given a send that answers slower than the connector timeout (and a
//!   lookup as slow), when the run executes, then the SMS is POSTed once and
//!   the run ends failed with `in_doubt`, naming the step, instead of being
//!   resent;
//! - given a 500 on a Slack post, then it is not resent either;
//! - given an agent whose first attempt fails after its send completed, when
//!   the agent's retry policy runs a second attempt, then the completed step
//!   is replayed from the journal and the vendor sees one request.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, ConnectorOptions, OrchestratorBuilder,
    RetryPolicy, RunOutcome, Secret, Slack, SubmitRun,
};
use neonhub_events::RunEvent;
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

fn sent() -> (u16, String) {
    (
        201,
        json!({"sid": "SM0001", "status": "queued"}).to_string(),
    )
}

/// Retries and a short timeout: what would resend if anything did.
fn eager() -> ConnectorOptions {
    ConnectorOptions {
        timeout: Duration::from_millis(100),
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    }
}

fn error_kind(outcome: &RunOutcome) -> (String, String) {
    let error = outcome.result.clone().expect_err("the run should fail");
    (error.kind.as_str().to_owned(), error.message)
}

#[actix::test]
async fn a_send_slower_than_the_timeout_is_sent_once_and_ends_in_doubt() {
    let (_dir, store) = support::store();
    let server = TestServer::start_slow(Duration::from_millis(400), |_| sent());
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(support::twilio_at(&server.base_url), eager())
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "+15550001111", "body": "once"}),
        ))
        .await
        .unwrap()
        .unwrap();
    // Leave time for any resend to arrive.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Besides the send, the connector may look it up (GET), never resend it.
    let posts = server.count(|s| s.method == "POST");
    assert_eq!(posts, 1, "the SMS was POSTed more than once");
    let (kind, message) = error_kind(&outcome);
    assert_eq!(kind, "in_doubt", "{message}");
    assert!(message.contains("twilio.send_sms#1"), "{message}");
    let child = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(child.len(), 1);
    assert_eq!(
        support::shape(&support::events(&store, child[0]).await),
        ["started#1", "failed#1(in_doubt)"]
    );
}

#[actix::test]
async fn a_server_error_on_a_post_is_not_resent() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (500, "{}".to_owned()));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .connector(
            Slack::live(&server.base_url, Secret::new("xoxb-test")),
            eager(),
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

    let posts = server.count(|s| s.path == "/chat.postMessage");
    assert_eq!(posts, 1, "the message was posted more than once");
    let (kind, message) = error_kind(&outcome);
    assert_eq!(kind, "in_doubt", "{message}");
    assert!(message.contains("slack.post_message#1"), "{message}");
}

/// Sends one SMS, then fails its first attempt (retryably) after the send.
#[derive(Clone, Copy)]
struct SendThenFailOnce;

#[async_trait]
impl Agent for SendThenFailOnce {
    fn name(&self) -> &str {
        "send_then_fail_once"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let sent = ctx.call("twilio", "send_sms", input).await?;
        if ctx.attempt() == 1 {
            return Err(AgentError::retryable("failed after the send"));
        }
        Ok(sent)
    }
}

#[actix::test]
async fn an_agent_retry_replays_a_completed_step_instead_of_sending_again() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| sent());
    let agent = AgentOptions {
        retry: RetryPolicy::attempts(2, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| SendThenFailOnce, agent)
        .connector(support::twilio_at(&server.base_url), eager())
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent(
            "send_then_fail_once",
            json!({"to": "+15550001111", "body": "once"}),
        ))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(server.hits(), 1, "the completed send was executed again");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.result.clone().unwrap()["sid"], json!("SM0001"));
    let children = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(children.len(), 1, "one step, one child run");
    let events = support::events(&store, children[0]).await;
    assert_eq!(support::shape(&events), ["started#1", "succeeded#1"]);
    let RunEvent::Started(step) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(step.step.as_deref(), Some("twilio.send_sms#1"));
}
