//! Steps are found again by their key. Given a step's stream that holds a
//! `RunStarted` and no outcome (a crash, or an earlier attempt cut off while
//! the request was on the wire), when the run's agent makes that call:
//! - an operation that is not safe to repeat is not sent; the step is
//!   closed `in_doubt` and the run fails naming it;
//! - an operation that is safe to repeat is sent again in the same stream.
//!
//! And a step the agent names is recorded under that name, with the run id
//! derived from the parent's id and the name.

use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, ConnectorOptions, OrchestratorBuilder,
    RetryPolicy, SubmitRun,
};
use neonhub_events::{
    Codec, ExpectedRevision, Metadata, RunEvent, RunId, RunKind, RunStarted, SharedStore, Timestamp,
};
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};
use uuid::Uuid;

/// Calls one Twilio operation (`input.operation`) with `input.input`,
/// under the step name `input.step` if there is one.
#[derive(Clone, Copy)]
struct OneCall;

#[async_trait]
impl Agent for OneCall {
    fn name(&self) -> &str {
        "one_call"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let operation = input["operation"].as_str().unwrap_or_default();
        let args = input["input"].clone();
        let output = match input["step"].as_str() {
            Some(step) => ctx.step(step).call("twilio", operation, args).await?,
            None => ctx.call("twilio", operation, args).await?,
        };
        Ok(output)
    }
}

fn orchestrator(
    store: &SharedStore,
    server: &TestServer,
) -> actix::Addr<neonhub_actors::Orchestrator> {
    let twilio = support::twilio_at(&server.base_url);
    let options = ConnectorOptions {
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        ..ConnectorOptions::default()
    };
    OrchestratorBuilder::new(store.clone())
        .agent(|| OneCall, AgentOptions::default())
        .connector(twilio, options)
        .start()
        .unwrap()
}

/// The id neonhub derives for step `key` of run `parent`.
fn step_id(parent: RunId, key: &str) -> RunId {
    RunId::from_uuid(Uuid::new_v5(parent.as_uuid(), key.as_bytes()))
}

/// Appends what a crash mid-request leaves: the step's `RunStarted` alone.
async fn leave_started(store: &SharedStore, parent: RunId, key: &str, operation: &str) -> RunId {
    let run_id = step_id(parent, key);
    let started = RunEvent::Started(RunStarted {
        run_id,
        kind: RunKind::Connector,
        target: "twilio".into(),
        operation: operation.into(),
        intent: None,
        input: json!({}),
        attempt: 1,
        parent_run_id: Some(parent),
        correlation_id: *parent.as_uuid(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: Some(key.into()),
        resumed: false,
        node: None,
        paused_micros: 0,
    });
    let data = Codec::new().encode(&started, Metadata::default()).unwrap();
    store
        .append(&run_id.stream(), ExpectedRevision::NoStream, vec![data])
        .await
        .unwrap();
    run_id
}

#[actix::test]
async fn an_unsafe_step_found_in_doubt_is_not_sent_and_fails_the_run_in_doubt() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (201, json!({"sid": "SM1"}).to_string()));
    let parent = RunId::new();
    let step = leave_started(&store, parent, "twilio.send_sms#1", "send_sms").await;

    let outcome = orchestrator(&store, &server)
        .send(
            SubmitRun::agent(
                "one_call",
                json!({"operation": "send_sms", "input": {"to": "+15550001111", "body": "x"}}),
            )
            .with_run_id(parent),
        )
        .await
        .unwrap()
        .unwrap();

    assert_eq!(server.hits(), 0, "a send in doubt was sent again");
    let error = outcome.result.clone().unwrap_err();
    assert_eq!(error.kind.as_str(), "in_doubt");
    assert!(
        error.message.contains("twilio.send_sms#1"),
        "{}",
        error.message
    );
    assert_eq!(
        support::shape(&support::events(&store, step).await),
        ["started#1", "failed#1(in_doubt)"]
    );
}

#[actix::test]
async fn a_safe_step_found_in_doubt_is_executed_again_in_its_stream() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (200, json!({"sid": "SM1", "status": "sent"}).to_string()));
    let parent = RunId::new();
    let step = leave_started(&store, parent, "twilio.sms_status#1", "sms_status").await;

    let outcome = orchestrator(&store, &server)
        .send(
            SubmitRun::agent(
                "one_call",
                json!({"operation": "sms_status", "input": {"sid": "SM1"}}),
            )
            .with_run_id(parent),
        )
        .await
        .unwrap()
        .unwrap();

    assert_eq!(server.hits(), 1);
    assert_eq!(outcome.result.clone().unwrap()["status"], json!("sent"));
    assert_eq!(
        support::shape(&support::events(&store, step).await),
        [
            "started#1",
            "failed#1(in_doubt, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
}

#[actix::test]
async fn a_named_step_is_recorded_under_its_name_and_derived_id() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (201, json!({"sid": "SM1"}).to_string()));
    let parent = RunId::new();

    let outcome = orchestrator(&store, &server)
        .send(
            SubmitRun::agent(
                "one_call",
                json!({"operation": "send_sms", "step": "notify-owner",
                       "input": {"to": "+15550001111", "body": "x"}}),
            )
            .with_run_id(parent),
        )
        .await
        .unwrap()
        .unwrap();

    assert!(outcome.is_success(), "{:?}", outcome.result);
    let children = support::child_runs(&store, parent).await;
    assert_eq!(children, [step_id(parent, "notify-owner")]);
    let events = support::events(&store, children[0]).await;
    let RunEvent::Started(started) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(started.step.as_deref(), Some("notify-owner"));
}
