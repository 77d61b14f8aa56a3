//! Start-up recovery seeded from the AgentRun table (`find_in_flight`: the
//! runs the table holds unfinished at its checkpoint, their streams and the
//! log after the checkpoint) finds the same unfinished runs, in the same
//! state, as the scan of the whole log (`find_unfinished`), on random logs
//! of agent runs and steps that retry, end in doubt and are resolved or
//! resumed, are cancelled and executed again, or stop mid-run; with the
//! table at every distance behind the log, and as the log goes on (a node's
//! index kept current). Without a table, or with one ahead of the log, it
//! reads the whole log and says so.

use std::sync::{Arc, Mutex};

use neonhub::{RecoverySource, find_in_flight};
use neonhub_actors::{UnfinishedIndex, find_unfinished};
use neonhub_events::{
    Codec, EmbeddedLog, ErrorKind, EventStore, ExpectedRevision, LogOptions, Metadata, Position,
    RunError, RunEvent, RunFailed, RunId, RunKind, RunStarted, RunStatus, RunSucceeded,
    SharedStore, StepOutcome, StepResolved, Timestamp,
};
use neonhub_projections::{AsOf, RebuildOptions, RunQueries, rebuild};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// One append: a run's stream and its events (a retry is two, together).
type Batch = (RunId, Vec<RunEvent>);

fn started(run_id: RunId, parent: Option<(RunId, &str)>, attempt: u32) -> RunEvent {
    RunEvent::Started(RunStarted {
        run_id,
        kind: if parent.is_some() {
            RunKind::Connector
        } else {
            RunKind::Agent
        },
        target: if parent.is_some() { "twilio" } else { "sms" }.into(),
        operation: if parent.is_some() { "send_sms" } else { "run" }.into(),
        intent: None,
        input: json!({"n": attempt}),
        attempt,
        parent_run_id: parent.map(|(p, _)| p),
        correlation_id: *parent.map_or(run_id, |(p, _)| p).as_uuid(),
        started_at: Timestamp::now(),
        request_digest: None,
        step: parent.map(|(_, key)| key.to_owned()),
        resumed: attempt > 1 && parent.is_none(),
        node: None,
        paused_micros: u64::from(attempt - 1) * 7,
    })
}

fn failed(run_id: RunId, attempt: u32, kind: ErrorKind, will_retry: bool) -> RunEvent {
    RunEvent::Failed(RunFailed {
        run_id,
        attempt,
        error: RunError::new(kind, format!("{kind:?} on attempt {attempt}")),
        will_retry,
        retry_at: None,
        duration_micros: 5,
        finished_at: Timestamp::now(),
    })
}

/// A random walk through one run's grammar (`RunState::apply`): attempts,
/// retries, an end (succeeded, failed, in doubt, cancelled, interrupted) or
/// none, and what may follow an end (a resolution, a resume, a step's next
/// execution).
fn walk(rng: &mut StdRng, run_id: RunId, parent: Option<(RunId, &str)>) -> Vec<Vec<RunEvent>> {
    let step = parent.is_some();
    let mut batches = vec![vec![started(run_id, parent, 1)]];
    let mut attempt = 1;
    // None: running; Some(kind): failed with kind (or succeeded: None below).
    let mut ended: Option<Option<ErrorKind>> = None;
    for _ in 0..8 {
        match ended {
            None => match rng.random_range(0..10) {
                0 | 1 => break, // stopped mid-run
                2..=4 => {
                    batches.push(vec![RunEvent::Succeeded(RunSucceeded {
                        run_id,
                        attempt,
                        output: json!({"ok": attempt}),
                        duration_micros: 3,
                        finished_at: Timestamp::now(),
                    })]);
                    ended = Some(None);
                }
                5 | 6 => {
                    batches.push(vec![
                        failed(run_id, attempt, ErrorKind::Timeout, true),
                        started(run_id, parent, attempt + 1),
                    ]);
                    attempt += 1;
                }
                _ => {
                    let kind = [
                        ErrorKind::InDoubt,
                        ErrorKind::Cancelled,
                        ErrorKind::Interrupted,
                        ErrorKind::Connector,
                    ][rng.random_range(0..4)];
                    batches.push(vec![failed(run_id, attempt, kind, false)]);
                    ended = Some(Some(kind));
                }
            },
            Some(Some(ErrorKind::InDoubt)) if rng.random_bool(0.6) => {
                if step {
                    let sent = rng.random_bool(0.5);
                    batches.push(vec![RunEvent::StepResolved(StepResolved {
                        run_id,
                        step: parent.map(|(_, key)| key.to_owned()).unwrap_or_default(),
                        outcome: if sent {
                            StepOutcome::Sent
                        } else {
                            StepOutcome::NotSent
                        },
                        decided_by: "operator".into(),
                        reason: None,
                        decided_at: Timestamp::now(),
                    })]);
                    ended = if sent { Some(None) } else { None };
                } else {
                    attempt += 1;
                    batches.push(vec![started(run_id, parent, attempt)]);
                    ended = None;
                }
            }
            Some(Some(ErrorKind::Cancelled)) if step && rng.random_bool(0.6) => {
                attempt += 1;
                batches.push(vec![started(run_id, parent, attempt)]);
                ended = None;
            }
            Some(_) => break,
        }
    }
    batches
}

/// A random log's appends, in the order they are made: `runs` agent runs of
/// up to three steps each, interleaved; a step starts after its run.
fn history(seed: u64, runs: usize) -> Vec<Batch> {
    let mut rng = StdRng::seed_from_u64(seed);
    // Per stream: its pending batches and, for a step, its run.
    let mut streams: Vec<(
        RunId,
        Option<RunId>,
        std::collections::VecDeque<Vec<RunEvent>>,
    )> = Vec::new();
    for _ in 0..runs {
        let run = RunId::new();
        streams.push((run, None, walk(&mut rng, run, None).into()));
        for k in 0..rng.random_range(0..=3) {
            let key = format!("twilio.send_sms#{k}");
            let step = run.step(&key);
            streams.push((
                step,
                Some(run),
                walk(&mut rng, step, Some((run, &key))).into(),
            ));
        }
    }
    let mut begun = std::collections::HashSet::new();
    let mut out = Vec::new();
    loop {
        let ready: Vec<usize> = (0..streams.len())
            .filter(|&i| {
                !streams[i].2.is_empty() && streams[i].1.is_none_or(|p| begun.contains(&p))
            })
            .collect();
        if ready.is_empty() {
            return out;
        }
        let i = ready[rng.random_range(0..ready.len())];
        let batch = streams[i].2.pop_front().expect("ready");
        begun.insert(streams[i].0);
        out.push((streams[i].0, batch));
    }
}

async fn append(store: &dyn EventStore, codec: &Codec, batches: &[Batch]) {
    for (run_id, events) in batches {
        let stream = run_id.stream();
        let last = store
            .read_stream(
                &stream,
                neonhub_events::Direction::Backwards,
                neonhub_events::ReadFrom::End,
                1,
            )
            .await
            .unwrap();
        let expected = last.first().map_or(ExpectedRevision::NoStream, |e| {
            ExpectedRevision::Exact(e.revision)
        });
        let data = events
            .iter()
            .map(|e| codec.encode(e, Metadata::default()).unwrap())
            .collect();
        store.append(&stream, expected, data).await.unwrap();
    }
}

fn open_log(dir: &std::path::Path) -> SharedStore {
    Arc::new(EmbeddedLog::open(dir, LogOptions::default()).unwrap())
}

/// The table as it stood right after the event at `at` (or at the head).
async fn table_as_of(store: &SharedStore, dir: &std::path::Path, at: AsOf) -> std::path::PathBuf {
    let path = dir.join(format!("table-{}.sqlite", uuid::Uuid::new_v4().simple()));
    rebuild(store, &path, RebuildOptions::default().as_of(at))
        .await
        .unwrap();
    path
}

#[tokio::test]
async fn the_table_and_the_log_after_it_give_what_the_full_scan_gives() {
    let codec = Codec::new();
    // How often a run the table held finished was open again at the head
    // (read back from its stream when the log named it after the table).
    let mut reopened_after_the_table = 0;
    let mut compared = 0;
    for seed in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let store = open_log(&dir.path().join("log"));
        let batches = history(seed, 14);
        let split = batches.len() * 2 / 3;
        append(&*store, &codec, &batches[..split]).await;
        let head = store.head().await.unwrap();

        let (_, expected) = find_unfinished(&*store, &codec).await.unwrap();
        let mut rng = StdRng::seed_from_u64(seed + 1000);
        let mut cuts: Vec<AsOf> = (0..5)
            .map(|_| AsOf::Position(Position(rng.random_range(0..head.0))))
            .collect();
        cuts.push(AsOf::Position(Position(0)));
        cuts.push(AsOf::End);
        let mut indexes = Vec::new();
        for cut in cuts {
            let table = table_as_of(&store, dir.path(), cut).await;
            let (index, source) = find_in_flight(&*store, &codec, &table).await.unwrap();
            let RecoverySource::Table { checkpoint, .. } = source else {
                panic!("seed {seed}, {cut:?}: the table was not used: {source:?}");
            };
            assert_eq!(
                index.select(|_| true),
                expected,
                "seed {seed}: table at {checkpoint}, log head {head}"
            );
            compared += 1;
            let rows = RunQueries::open(&table).unwrap();
            for run in &expected {
                if let Some(detail) = rows.get(run.run_id()).unwrap()
                    && detail.run.status != RunStatus::Running
                {
                    reopened_after_the_table += 1;
                }
            }
            indexes.push((checkpoint, index));
        }

        // The log goes on: each seeded index, caught up, is what a full
        // scan's index is, run for run.
        append(&*store, &codec, &batches[split..]).await;
        let mut full = UnfinishedIndex::default();
        full.catch_up(&*store, &codec).await.unwrap();
        let all = full.select(|_| true);
        assert_eq!(all, find_unfinished(&*store, &codec).await.unwrap().1);
        for (checkpoint, mut index) in indexes {
            index.catch_up(&*store, &codec).await.unwrap();
            assert_eq!(
                index.select(|_| true),
                all,
                "seed {seed}: seeded at {checkpoint}, then caught up"
            );
        }
    }
    assert_eq!(compared, 12 * 7);
    assert!(
        reopened_after_the_table > 0,
        "no run finished in the table was open at the head: the logs do not test reopening"
    );
}

#[tokio::test]
async fn only_the_runs_in_flight_and_the_log_after_the_table_are_read() {
    let codec = Codec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open_log(&dir.path().join("log"));
    // 300 finished runs, then two that stop mid-run (one with a step).
    let mut batches = Vec::new();
    for _ in 0..300 {
        let run = RunId::new();
        batches.push((
            run,
            vec![
                started(run, None, 1),
                RunEvent::Succeeded(RunSucceeded {
                    run_id: run,
                    attempt: 1,
                    output: json!({}),
                    duration_micros: 1,
                    finished_at: Timestamp::now(),
                }),
            ],
        ));
    }
    let (a, b) = (RunId::new(), RunId::new());
    let step = a.step("twilio.send_sms#0");
    batches.push((a, vec![started(a, None, 1)]));
    batches.push((step, vec![started(step, Some((a, "twilio.send_sms#0")), 1)]));
    batches.push((b, vec![started(b, None, 1)]));
    append(&*store, &codec, &batches).await;
    let table = table_as_of(&store, dir.path(), AsOf::End).await;
    // One more event after the table's checkpoint.
    let c = RunId::new();
    append(&*store, &codec, &[(c, vec![started(c, None, 1)])]).await;

    let (full_read, expected) = find_unfinished(&*store, &codec).await.unwrap();
    assert_eq!(full_read, 604);
    let (index, source) = find_in_flight(&*store, &codec, &table).await.unwrap();
    assert!(matches!(source, RecoverySource::Table { in_flight: 3, .. }));
    assert_eq!(index.select(|_| true), expected);
    let ids: Vec<RunId> = expected.iter().map(|u| u.run_id()).collect();
    assert_eq!(ids, [a, step, b, c]);
    // The streams of a, its step and b (each read once), and the one event
    // after the table.
    assert_eq!(index.scanned(), 4, "read more than the runs in flight");
}

/// A subscriber that keeps what is logged, for asserting on it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn without_a_table_it_can_trust_recovery_reads_the_whole_log_and_says_so() {
    let logged = Captured::default();
    let writer = logged.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let codec = Codec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open_log(&dir.path().join("log"));
    append(&*store, &codec, &history(7, 10)).await;
    let (_, expected) = find_unfinished(&*store, &codec).await.unwrap();

    // No table.
    let missing = dir.path().join("agent_runs.sqlite");
    let (index, source) = find_in_flight(&*store, &codec, &missing).await.unwrap();
    assert_eq!(index.select(|_| true), expected);
    let RecoverySource::FullScan { why } = source else {
        panic!("{source:?}")
    };
    assert!(why.contains("no AgentRun table"), "{why}");
    let text = logged.text();
    assert!(
        text.contains("start-up recovery reads the whole log")
            && text.contains(&*missing.to_string_lossy()),
        "{text}"
    );
    assert!(!missing.exists(), "recovery created the table");

    // A table ahead of the log (an older log restored): not trusted, as the
    // projection does not trust it.
    let table = table_as_of(&store, dir.path(), AsOf::End).await;
    let older = open_log(&dir.path().join("older"));
    let batches = history(8, 3);
    append(&*older, &codec, &batches[..batches.len().min(4)]).await;
    let (_, expected) = find_unfinished(&*older, &codec).await.unwrap();
    let (index, source) = find_in_flight(&*older, &codec, &table).await.unwrap();
    assert_eq!(index.select(|_| true), expected);
    let RecoverySource::FullScan { why } = source else {
        panic!("{source:?}")
    };
    assert!(why.contains("is past the log's head"), "{why}");
    assert!(logged.text().contains("is past the log's head"));
}

#[tokio::test]
async fn the_steps_of_a_run_in_flight_count_for_when_it_was_last_heard_of() {
    // The run's own last event is its start; its step's come later. A
    // resume counts the time since the last of them as paused, so the
    // seeded path reads the step's stream too, as the full scan met it.
    let codec = Codec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open_log(&dir.path().join("log"));
    let run = RunId::new();
    let key = "twilio.send_sms#0";
    let step = run.step(key);
    let done = RunEvent::Succeeded(RunSucceeded {
        run_id: step,
        attempt: 1,
        output: json!({}),
        duration_micros: 1,
        finished_at: Timestamp::now(),
    });
    append(
        &*store,
        &codec,
        &[
            (run, vec![started(run, None, 1)]),
            (step, vec![started(step, Some((run, key)), 1)]),
            (step, vec![done]),
        ],
    )
    .await;
    let table = table_as_of(&store, dir.path(), AsOf::End).await;
    let (_, expected) = find_unfinished(&*store, &codec).await.unwrap();
    assert_eq!(expected.len(), 1);
    let (index, source) = find_in_flight(&*store, &codec, &table).await.unwrap();
    assert!(matches!(source, RecoverySource::Table { in_flight: 1, .. }));
    assert_eq!(index.select(|_| true), expected);
    assert_eq!(index.scanned(), 3, "the run's stream and its step's");
}
