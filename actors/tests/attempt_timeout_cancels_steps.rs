//! Given an agent attempt whose step (a Twilio send) is still on the wire
//! when the attempt times out, when the timeout fires, then the step is
//! cancelled (its request dropped) and recorded `in_doubt` before the
//! attempt's outcome is appended: nothing of an attempt is appended after
//! that attempt's outcome, and no success is recorded for a step of a run
//! that already failed.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, ConnectorOptions, OrchestratorBuilder, SubmitRun,
};
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

#[derive(Clone, Copy)]
struct SendSms;

#[async_trait]
impl Agent for SendSms {
    fn name(&self) -> &str {
        "send_sms"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        Ok(ctx.call("twilio", "send_sms", input).await?)
    }
}

#[actix::test]
async fn a_timed_out_attempt_cancels_its_step_and_records_it_first() {
    let (_dir, store) = support::store();
    let server = TestServer::start_slow(Duration::from_millis(800), |_| {
        (201, json!({"sid": "SM1", "status": "queued"}).to_string())
    });
    let twilio = support::twilio_at(&server.base_url);
    let agent = AgentOptions {
        timeout: Duration::from_millis(150),
        ..AgentOptions::default()
    };
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| SendSms, agent)
        .connector(twilio, ConnectorOptions::default())
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::agent(
            "send_sms",
            json!({"to": "+15550001111", "body": "late"}),
        ))
        .await
        .unwrap()
        .unwrap();
    // Past the vendor's answer: a step still running would record it now.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    assert_eq!(outcome.result.clone().unwrap_err().kind.as_str(), "timeout");
    assert_eq!(server.hits(), 1);
    let parent = support::recorded(&store, outcome.run_id).await;
    let ended_at = parent.last().unwrap().position;
    let child = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(child.len(), 1);
    let step = support::recorded(&store, child[0]).await;
    for event in &step {
        assert!(
            event.position < ended_at,
            "the step's {} at {:?} came after the attempt's outcome at {ended_at:?}",
            event.event_type,
            event.position
        );
    }
    assert_eq!(
        support::shape(&support::events(&store, child[0]).await),
        ["started#1", "failed#1(in_doubt)"]
    );
}
