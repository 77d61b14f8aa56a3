//! A run interrupted by a crash is resumed, not failed. Given the journal a
//! killed process leaves (an agent run started, its step recorded or in
//! doubt, no outcome), when start-up recovery finds it and the orchestrator
//! resumes it, then:
//! - a new attempt (`RunStarted{resumed}`) replays the finished step from
//!   its record, and the vendor gets no request;
//! - a step left in doubt is not resent but looked up at the vendor, which
//!   has no record of it: the run fails `in_doubt`;
//! - a run already resumed `max_resumes` times is closed `interrupted`;
//! - a run whose process died while it waited to retry a failed attempt
//!   keeps that attempt's own error in its record (recorded before the
//!   wait, with when to retry), and its new attempt is the resume, which
//!   runs no sooner than the backoff said.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, ConnectorOptions, OrchestratorBuilder,
    ResumeInterrupted, RetryPolicy, StartRun, SubmitRun, find_unfinished,
};
use neonhub_events::{
    Codec, ErrorKind, ExpectedRevision, Metadata, RunError, RunEvent, RunFailed, RunId, RunKind,
    RunStarted, RunStatus, RunSucceeded, SharedStore, Timestamp,
};
use neonhub_test_support as support;
use neonhub_test_support::crash::Crashing;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};
use uuid::Uuid;

/// Sends one SMS and answers with what Twilio said.
#[derive(Clone, Copy)]
struct Notify;

#[async_trait]
impl Agent for Notify {
    fn name(&self) -> &str {
        "notify"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        Ok(ctx.call("twilio", "send_sms", input).await?)
    }
}

const STEP: &str = "twilio.send_sms#1";

fn started(run_id: RunId, attempt: u32, parent: Option<RunId>, resumed: bool) -> RunEvent {
    let (kind, target, operation) = match parent {
        None => (RunKind::Agent, "notify", "run"),
        Some(_) => (RunKind::Connector, "twilio", "send_sms"),
    };
    RunEvent::Started(RunStarted {
        run_id,
        kind,
        target: target.into(),
        operation: operation.into(),
        intent: None,
        input: json!({"to": "+15550001111", "body": "once"}),
        attempt,
        parent_run_id: parent,
        correlation_id: Uuid::nil(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: parent.map(|_| STEP.to_owned()),
        resumed,
        node: None,
        paused_micros: 0,
    })
}

async fn append(store: &SharedStore, run_id: RunId, at: ExpectedRevision, events: &[RunEvent]) {
    let codec = Codec::new();
    let data = events
        .iter()
        .map(|e| codec.encode(e, Metadata::default()).unwrap())
        .collect();
    store.append(&run_id.stream(), at, data).await.unwrap();
}

fn step_id(parent: RunId) -> RunId {
    RunId::from_uuid(Uuid::new_v5(parent.as_uuid(), STEP.as_bytes()))
}

/// Starts the orchestrator, hands it what recovery finds, and waits for
/// every run to finish.
async fn recover(store: &SharedStore, server: &TestServer) -> neonhub_actors::ResumeReport {
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| Notify, AgentOptions::default())
        .connector(
            support::twilio_at(&server.base_url),
            ConnectorOptions::default(),
        )
        .start()
        .unwrap();
    recover_with(store, &orchestrator).await
}

/// Hands `orchestrator` what recovery finds in `store`, and waits for every
/// run to finish.
async fn recover_with(
    store: &SharedStore,
    orchestrator: &actix::Addr<neonhub_actors::Orchestrator>,
) -> neonhub_actors::ResumeReport {
    let (_, runs) = find_unfinished(&**store, &Codec::new()).await.unwrap();
    let report = orchestrator
        .send(ResumeInterrupted {
            runs,
            max_resumes: 3,
        })
        .await
        .unwrap()
        .unwrap();
    support::wait_until_within("every run to finish", Duration::from_secs(5), || {
        let store = store.clone();
        async move {
            let (_, open) = find_unfinished(&*store, &Codec::new()).await.unwrap();
            open.is_empty()
        }
    })
    .await;
    report
}

fn status(events: &[RunEvent]) -> RunStatus {
    match events.last() {
        Some(RunEvent::Succeeded(_)) => RunStatus::Succeeded,
        Some(RunEvent::Failed(f)) if !f.will_retry => RunStatus::Failed,
        _ => RunStatus::Running,
    }
}

/// What a crash after a run's step finished leaves: the run started
/// (attempt 1), its step started and succeeded with `{"sid":
/// "SM-recorded"}`, and no outcome for the run. Returns the run.
async fn cut_off_after_its_step(store: &SharedStore) -> RunId {
    let parent = RunId::new();
    let step = step_id(parent);
    append(
        store,
        parent,
        ExpectedRevision::NoStream,
        &[started(parent, 1, None, false)],
    )
    .await;
    let done = RunEvent::Succeeded(RunSucceeded {
        run_id: step,
        attempt: 1,
        output: json!({"sid": "SM-recorded"}),
        duration_micros: 10,
        finished_at: Timestamp::now(),
    });
    append(
        store,
        step,
        ExpectedRevision::NoStream,
        &[started(step, 1, Some(parent), false), done],
    )
    .await;
    parent
}

#[actix::test]
async fn a_run_cut_off_after_its_step_resumes_and_replays_the_step() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (201, json!({"sid": "SM-new"}).to_string()));
    let parent = cut_off_after_its_step(&store).await;

    let report = recover(&store, &server).await;

    assert_eq!(report.resumed, [parent]);
    assert!(report.interrupted.is_empty());
    assert_eq!(server.hits(), 0, "the recorded send was sent again");
    let events = support::events(&store, parent).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(interrupted, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
    let RunEvent::Started(resumed) = &events[2] else {
        panic!("{events:?}")
    };
    assert!(resumed.resumed, "the new attempt says it is a resume");
    let RunEvent::Succeeded(succeeded) = &events[3] else {
        panic!("{events:?}")
    };
    assert_eq!(succeeded.output, json!({"sid": "SM-recorded"}));
}

#[actix::test]
async fn a_run_cut_off_mid_send_resumes_and_fails_in_doubt_without_resending() {
    let (_dir, store) = support::store();
    // Twilio has no message to the number: the send never reached it.
    let server = TestServer::start(|req| match req.method.as_str() {
        "GET" => (
            200,
            json!({"messages": [], "next_page_uri": null}).to_string(),
        ),
        _ => (201, json!({"sid": "SM-new"}).to_string()),
    });
    let parent = RunId::new();
    let step = step_id(parent);
    append(
        &store,
        parent,
        ExpectedRevision::NoStream,
        &[started(parent, 1, None, false)],
    )
    .await;
    append(
        &store,
        step,
        ExpectedRevision::NoStream,
        &[started(step, 1, Some(parent), false)],
    )
    .await;

    let report = recover(&store, &server).await;

    assert_eq!(report.resumed, [parent]);
    let posts = server.count(|s| s.method == "POST");
    assert_eq!(posts, 0, "a send in doubt was sent again");
    assert_eq!(server.count(|s| s.method == "GET"), 1, "it was looked up");
    let events = support::events(&store, parent).await;
    assert_eq!(status(&events), RunStatus::Failed);
    let RunEvent::Failed(failed) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(failed.error.kind, ErrorKind::InDoubt);
    assert!(
        failed.error.message.contains(STEP),
        "{}",
        failed.error.message
    );
    assert!(
        failed.error.message.contains("has no record of it"),
        "{}",
        failed.error.message
    );
    assert_eq!(
        support::shape(&support::events(&store, step).await),
        ["started#1", "failed#1(in_doubt)"]
    );
}

#[actix::test]
async fn a_run_resumed_too_often_is_closed_interrupted_with_its_steps() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (201, json!({"sid": "SM-new"}).to_string()));
    let parent = RunId::new();
    let step = step_id(parent);
    let cut = |attempt| {
        RunEvent::Failed(RunFailed {
            run_id: parent,
            attempt,
            error: RunError::new(ErrorKind::Interrupted, "stopped"),
            will_retry: true,
            retry_at: None,
            duration_micros: 0,
            finished_at: Timestamp::now(),
        })
    };
    let mut history = vec![started(parent, 1, None, false)];
    for attempt in 1..=3 {
        history.push(cut(attempt));
        history.push(started(parent, attempt + 1, None, true));
    }
    append(&store, parent, ExpectedRevision::NoStream, &history).await;
    append(
        &store,
        step,
        ExpectedRevision::NoStream,
        &[started(step, 1, Some(parent), false)],
    )
    .await;

    let report = recover(&store, &server).await;

    assert!(report.resumed.is_empty());
    assert_eq!(report.interrupted, [parent, step]);
    assert_eq!(server.hits(), 0);
    let events = support::events(&store, parent).await;
    let RunEvent::Failed(failed) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (failed.error.kind, failed.will_retry),
        (ErrorKind::Interrupted, false)
    );
}

#[actix::test]
async fn the_time_a_process_was_down_is_not_counted_in_a_resumed_runs_duration() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|_| (201, json!({"sid": "SM-new"}).to_string()));
    let parent = cut_off_after_its_step(&store).await;
    // The process is down for 1.5 s after its last event (the step's).
    let down = Duration::from_millis(1500);
    tokio::time::sleep(down).await;

    recover(&store, &server).await;

    let events = support::events(&store, parent).await;
    let RunEvent::Started(resumed) = &events[2] else {
        panic!("{events:?}")
    };
    assert!(
        resumed.paused_micros >= down.as_micros() as u64,
        "the resume counts {} µs not executing, the process was down {down:?}",
        resumed.paused_micros
    );
    let run = neonhub_events::RunState::from_stream(
        &Codec::new(),
        &support::recorded(&store, parent).await,
    )
    .unwrap()
    .unwrap();
    let duration = run.duration_micros.unwrap();
    assert!(
        duration < 1_000_000,
        "the run's duration ({duration} µs) counts the {down:?} the process was down"
    );
    assert_eq!(run.paused_micros, resumed.paused_micros);
}

/// Fails its first attempt with a retryable error, then sends the SMS.
#[derive(Clone, Copy)]
struct FailsFirst;

#[async_trait]
impl Agent for FailsFirst {
    fn name(&self) -> &str {
        "fails-first"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        if ctx.attempt() == 1 {
            return Err(AgentError::retryable("the model is overloaded"));
        }
        Ok(ctx.call("twilio", "send_sms", input).await?)
    }
}

#[actix::test]
async fn a_run_killed_while_it_waited_to_retry_keeps_its_failed_attempt() {
    let (_dir, store) = support::store();
    let server =
        TestServer::start(|_| (201, json!({"sid": "SM1", "status": "queued"}).to_string()));
    let options = AgentOptions {
        retry: RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::attempts(2, Duration::from_secs(2))
        },
        ..AgentOptions::default()
    };
    let orchestrator = |store: SharedStore| {
        OrchestratorBuilder::new(store)
            .agent(|| FailsFirst, options)
            .connector(
                support::twilio_at(&server.base_url),
                ConnectorOptions::default(),
            )
            .start()
            .unwrap()
    };
    // The first life: attempt 1 fails at once, the retry waits 2 s, and the
    // process dies during that wait.
    let life = Arc::new(Crashing::new(store.clone(), None));
    let first = orchestrator(Arc::clone(&life) as SharedStore);
    let ticket = first
        .send(StartRun(SubmitRun::agent(
            "fails-first",
            json!({"to": "+15550001111", "body": "once"}),
        )))
        .await
        .unwrap()
        .unwrap();
    let run_id = ticket.run_id();
    support::wait_until_within(
        "attempt 1's failure to be recorded",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            async move { support::events(&store, run_id).await.len() == 2 }
        },
    )
    .await;
    life.die();

    // The next life resumes what the first left.
    let report = recover_with(&store, &orchestrator(store.clone())).await;
    assert_eq!(report.resumed, [run_id]);

    let events = support::events(&store, run_id).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(agent, will retry)",
            "started#2",
            "succeeded#2"
        ],
        "attempt 1's own failure is in the record, and attempt 2 is the resume"
    );
    let RunEvent::Failed(failed) = &events[1] else {
        unreachable!("the shape says failed#1")
    };
    assert_eq!(failed.error.message, "the model is overloaded");
    let retry_at = failed.retry_at.expect("when to retry is recorded");
    assert!(
        retry_at.0 >= failed.finished_at.0 + 2_000_000,
        "the backoff: {failed:?}"
    );
    let step = support::child_runs(&store, run_id).await;
    let RunEvent::Started(sent) = &support::events(&store, step[0]).await[0] else {
        unreachable!("a step begins with its RunStarted")
    };
    assert!(
        sent.started_at >= retry_at,
        "the resumed attempt ran before its backoff was over: {sent:?}, {failed:?}"
    );
    let RunEvent::Started(resumed) = &events[2] else {
        unreachable!("the shape says started#2")
    };
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(server.hits(), 1, "one SMS, sent by the resumed attempt");
}
