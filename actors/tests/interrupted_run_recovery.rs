//! Given a process that dies (aborts) with runs in flight — one inside its
//! agent, one between retries, one whose connector call hangs (so an agent
//! run and its child run are open) — and one finished run, when the log is
//! reopened and recovery runs, then each unfinished run gets exactly one
//! RunFailed{interrupted} at its next revision and the finished run is left
//! alone; a second recovery finds nothing to do.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, Connector, ConnectorError, ConnectorOptions,
    Error, OrchestratorBuilder, RetryPolicy, SubmitRun, recover_interrupted,
};
use neonhub_events::{
    Codec, EmbeddedLog, ErrorKind, LogOptions, RunEvent, RunId, RunKind, SharedStore,
};
use neonhub_test_support as support;
use serde_json::{Value, json};

const CHILD_DIR: &str = "NEONHUB_TEST_CRASH_DIR";
const CHILD_IDS: &str = "NEONHUB_TEST_CRASH_IDS";
const TEST_NAME: &str = "the_runs_of_a_dead_process_are_closed_as_interrupted";

/// Hangs forever, after failing its first attempt retryably if asked to.
struct Hang;

#[async_trait]
impl Agent for Hang {
    fn name(&self) -> &str {
        "hang"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        if input["fail_first"] == json!(true) && ctx.attempt() == 1 {
            return Err(AgentError::retryable("first attempt fails"));
        }
        std::future::pending().await
    }
}

/// Calls the `stuck` connector.
struct Caller;

#[async_trait]
impl Agent for Caller {
    fn name(&self) -> &str {
        "caller"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        Ok(ctx.call("stuck", "wait", input).await?)
    }
}

/// A connector whose service never answers.
struct Stuck;

#[async_trait]
impl Connector for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }

    async fn call(&self, _operation: &str, _input: &Value) -> Result<Value, ConnectorError> {
        std::future::pending().await
    }
}

fn open(dir: &str) -> SharedStore {
    Arc::new(EmbeddedLog::open(dir, LogOptions::default()).expect("open the log"))
}

/// The doomed process: starts the runs, waits until their events are
/// durable, then aborts.
fn child(dir: &str, ids: &str) -> ! {
    let ids: Vec<RunId> = ids.split(',').map(|s| s.parse().unwrap()).collect();
    let store = open(dir);
    actix::System::new().block_on(async move {
        let options = AgentOptions {
            timeout: Duration::from_secs(3600),
            retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
            ..AgentOptions::default()
        };
        let orchestrator = OrchestratorBuilder::new(store.clone())
            .agent(|| Hang, options)
            .agent(|| Caller, AgentOptions::default())
            .connector(
                Stuck,
                ConnectorOptions {
                    timeout: Duration::from_secs(3600),
                    ..Default::default()
                },
            )
            .builtin_agents()
            .start()
            .unwrap();
        let wait_for = |n: usize| {
            let store = store.clone();
            async move {
                support::wait_until_within("events to be durable", Duration::from_secs(10), || {
                    let store = store.clone();
                    async move { support::all(&store).await.len() >= n }
                })
                .await;
            }
        };
        let (hung, retrying, caller, done) = (ids[0], ids[1], ids[2], ids[3]);
        std::mem::forget(tokio::spawn(
            orchestrator.send(SubmitRun::agent("hang", json!({})).with_run_id(hung)),
        ));
        wait_for(1).await;
        std::mem::forget(tokio::spawn(orchestrator.send(
            SubmitRun::agent("hang", json!({"fail_first": true})).with_run_id(retrying),
        )));
        wait_for(4).await;
        std::mem::forget(tokio::spawn(
            orchestrator.send(SubmitRun::agent("caller", json!({"x": 1})).with_run_id(caller)),
        ));
        wait_for(6).await;
        let finished = orchestrator
            .send(SubmitRun::intent("echo", json!("fine")).with_run_id(done))
            .await
            .unwrap()
            .unwrap();
        assert!(finished.is_success());
        wait_for(8).await;
        // Die here, as kill -9 would: no teardown of the actor system, whose
        // agent arbiters would cut the hung attempts off and record retries.
        std::process::abort();
    });
    unreachable!("the child aborts inside its system")
}

#[test]
fn the_runs_of_a_dead_process_are_closed_as_interrupted() {
    if let (Ok(dir), Ok(ids)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_IDS)) {
        child(&dir, &ids);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_str = dir.path().to_str().unwrap().to_owned();
    let (hung, retrying, caller, done) = (RunId::new(), RunId::new(), RunId::new(), RunId::new());
    let ids = [hung, retrying, caller, done]
        .map(|id| id.to_string())
        .join(",");

    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, &dir_str)
        .env(CHILD_IDS, &ids)
        .status()
        .expect("run the child process");
    assert!(!status.success(), "the child was meant to die");

    let store = open(&dir_str);
    actix::System::new().block_on(async move {
        let before = support::all(&store).await;
        assert_eq!(before.len(), 8, "what the dead process left");
        // The child run of `caller` is the stream of the 6th event.
        let child_run = before[5].stream.run_id().unwrap();
        assert_ne!(child_run, caller);

        // Before recovery, a resubmission of an open run is refused as in
        // progress and records nothing.
        let orchestrator = OrchestratorBuilder::new(store.clone())
            .agent(|| Hang, AgentOptions::default())
            .start()
            .unwrap();
        let early = orchestrator
            .send(SubmitRun::agent("hang", json!({})).with_run_id(hung))
            .await
            .unwrap();
        assert!(
            matches!(early, Err(Error::RunInProgress(id)) if id == hung),
            "{early:?}"
        );
        assert_eq!(support::all(&store).await.len(), 8);

        let report = recover_interrupted(&*store, &Codec::new()).await.unwrap();
        assert_eq!(report.interrupted, [hung, retrying, caller, child_run]);
        assert_eq!(report.events_scanned, 8);

        assert_eq!(
            support::shape(&support::events(&store, hung).await),
            ["started#1", "failed#1(interrupted)"]
        );
        assert_eq!(
            support::shape(&support::events(&store, retrying).await),
            [
                "started#1",
                "failed#1(agent, will retry)",
                "started#2",
                "failed#2(interrupted)"
            ]
        );
        assert_eq!(
            support::shape(&support::events(&store, caller).await),
            ["started#1", "failed#1(interrupted)"]
        );
        let child_events = support::events(&store, child_run).await;
        assert_eq!(
            support::shape(&child_events),
            ["started#1", "failed#1(interrupted)"]
        );
        let RunEvent::Started(started) = &child_events[0] else {
            panic!()
        };
        assert_eq!(started.kind, RunKind::Connector);
        assert_eq!(started.parent_run_id, Some(caller));
        let child_recorded = support::recorded(&store, child_run).await;
        assert_eq!(
            child_recorded[1].metadata.causation_id,
            Some(*caller.as_uuid())
        );
        assert_eq!(
            child_recorded[1].metadata.correlation_id,
            Some(*caller.as_uuid())
        );
        let RunEvent::Failed(failed) = &child_events[1] else {
            panic!()
        };
        assert_eq!(failed.error.kind, ErrorKind::Interrupted);
        assert!(!failed.will_retry);
        for id in [hung, retrying, caller, child_run, done] {
            support::assert_contiguous(&support::recorded(&store, id).await);
        }
        assert_eq!(
            support::shape(&support::events(&store, done).await),
            ["started#1", "succeeded#1"]
        );

        let head = store.head().await.unwrap();
        let again = recover_interrupted(&*store, &Codec::new()).await.unwrap();
        assert!(again.interrupted.is_empty());
        assert_eq!(store.head().await.unwrap(), head);

        // A resubmission of an interrupted run answers with its outcome.
        let outcome = orchestrator
            .send(SubmitRun::agent("hang", json!({})).with_run_id(hung))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Interrupted);
        assert_eq!(store.head().await.unwrap(), head);
    });
}
