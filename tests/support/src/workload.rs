//! Workloads: the sample run events the benches share (an `email` agent
//! run as a service records it) and the runtime they drive stores on, and
//! the mix of run requests the service scenarios submit.

use neonhub_events::{RunEvent, RunId, RunKind, RunStarted, RunSucceeded, Timestamp};
use serde_json::{Value, json};
use uuid::Uuid;

/// A realistic first event of an agent run: a `RunStarted` with a small
/// JSON input (about 250 bytes of MessagePack).
pub fn run_started(run_id: RunId, correlation_id: Uuid) -> RunEvent {
    RunEvent::Started(RunStarted {
        run_id,
        kind: RunKind::Agent,
        target: "email".into(),
        operation: "run".into(),
        intent: Some("email.send".into()),
        input: json!({
            "to": "alice@example.com",
            "subject": "Q3 report",
            "body": "Hi Alice, the Q3 figures are attached. Bob",
        }),
        attempt: 1,
        parent_run_id: None,
        correlation_id,
        started_at: Timestamp::now(),
        request_digest: None,
        step: None,
        resumed: false,
        node: None,
        paused_micros: 0,
    })
}

/// Its successful end.
pub fn run_succeeded(run_id: RunId) -> RunEvent {
    RunEvent::Succeeded(RunSucceeded {
        run_id,
        attempt: 1,
        output: json!({"message_id": "<20261124.1234@example.com>", "accepted": true}),
        duration_micros: 182_345,
        finished_at: Timestamp::now(),
    })
}

/// The `i`th request body of a mixed workload: echo runs, texts (every
/// other one to a number that is not E.164), generated content (every other
/// one in a tone the agent refuses) and Slack posts, in turn.
pub fn mixed_run(i: usize) -> Value {
    match i % 4 {
        0 => json!({"agent": "echo", "input": {"i": i}}),
        1 => {
            json!({"intent": "sms.send", "input": {"to": if i % 8 == 1 { "12-34".to_owned() } else { format!("+1555000{i:04}") }, "body": "hi"}})
        }
        2 => {
            json!({"intent": "content.generate", "input": {"topic": "tea", "tone": if i % 8 == 2 { "grumpy" } else { "friendly" }}})
        }
        _ => json!({"agent": "slack", "input": {"channel": "#ops", "text": "deployed"}}),
    }
}

/// The runtime the benches drive a store on: multi-threaded, two workers
/// (the machine's cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Appends `runs` finished runs to `store` from `tasks` concurrent tasks,
/// as a busy service would: each run's `RunStarted` then `RunSucceeded` (the
/// two events above) in its own stream, in two appends (`one_append`:
/// one). The benches' large logs are built with it.
pub async fn append_finished_runs(
    store: std::sync::Arc<dyn neonhub_events::EventStore>,
    runs: u64,
    tasks: u64,
    one_append: bool,
) {
    use neonhub_events::{Codec, ExpectedRevision, Metadata, Revision};
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let share = runs / tasks + u64::from(t < runs % tasks);
            tokio::spawn(async move {
                let codec = Codec::new();
                for _ in 0..share {
                    let run_id = RunId::new();
                    let correlation_id = Uuid::now_v7();
                    let metadata = Metadata {
                        correlation_id: Some(correlation_id),
                        causation_id: None,
                    };
                    let started = codec
                        .encode(&run_started(run_id, correlation_id), metadata)
                        .expect("encode");
                    let succeeded = codec
                        .encode(&run_succeeded(run_id), metadata)
                        .expect("encode");
                    let stream = run_id.stream();
                    if one_append {
                        store
                            .append(
                                &stream,
                                ExpectedRevision::NoStream,
                                vec![started, succeeded],
                            )
                            .await
                            .expect("append");
                        continue;
                    }
                    store
                        .append(&stream, ExpectedRevision::NoStream, vec![started])
                        .await
                        .expect("append");
                    store
                        .append(
                            &stream,
                            ExpectedRevision::Exact(Revision::FIRST),
                            vec![succeeded],
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("append task");
    }
}

/// The embedded log in `dir` of `runs` finished runs
/// ([`append_finished_runs`] by 64 tasks, buffered; `one_append` as
/// there), opened with `options`, built once: a `<dir>.complete` file
/// beside it marks a finished build, so an interrupted one is built again.
/// The benches' large logs.
pub fn finished_runs_log(
    dir: &std::path::Path,
    runs: u64,
    one_append: bool,
    options: neonhub_events::LogOptions,
) -> std::path::PathBuf {
    use neonhub_events::{Durability, EmbeddedLog, EventStore, Position};
    let mut done = dir.as_os_str().to_owned();
    done.push(".complete");
    let done = std::path::PathBuf::from(done);
    if done.exists() {
        return dir.to_path_buf();
    }
    let _ = std::fs::remove_dir_all(dir);
    let start = std::time::Instant::now();
    let log = std::sync::Arc::new(
        EmbeddedLog::open(dir, options.with_durability(Durability::Buffered))
            .expect("open the fixture log"),
    );
    let rt = runtime();
    rt.block_on(append_finished_runs(log.clone(), runs, 64, one_append));
    let log = std::sync::Arc::into_inner(log).expect("tasks are done");
    let head = rt.block_on(log.head()).expect("head");
    assert_eq!(head, Position(2 * runs));
    log.close();
    drop(log);
    std::fs::write(&done, head.0.to_string()).expect("mark the fixture complete");
    println!(
        "built fixture {}: {runs} runs, {} events in {:.1} s",
        dir.display(),
        head.0,
        start.elapsed().as_secs_f64()
    );
    dir.to_path_buf()
}
