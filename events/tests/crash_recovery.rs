//! Kill -9 under load: a child process appends batches from many tasks and
//! reports each acknowledged append; the parent kills it at a random moment,
//! reopens the log and checks that every acknowledged event is there, that
//! positions and revisions are contiguous, and that no batch was torn.
//! Repeated for `NEONHUB_CRASH_CYCLES` cycles (default 100).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use neonhub_events::{
    Direction, EmbeddedLog, EventData, EventId, EventStore, ExpectedRevision, LogOptions, Metadata,
    Position, ReadFrom, Revision, StreamId,
};
use rand::Rng;

const CHILD_ENV: &str = "NEONHUB_CRASH_CHILD_DIR";
const TASKS: usize = 16;

/// The payload of the `index`-th event of a batch of `size` appended at
/// `revision` of `stream`: the parent recomputes it to check contents.
fn payload(stream: &str, revision: u64, size: usize, index: usize) -> Vec<u8> {
    format!(
        "{stream}|{revision}|{size}|{index}|{}",
        "x".repeat(revision as usize % 97)
    )
    .into_bytes()
}

/// The child: appends until killed, printing `ack <stream> <first revision>
/// <count> <first position>` after each acknowledged append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of kill_9_under_load_loses_no_acknowledged_event"]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let log = Arc::new(EmbeddedLog::open(&dir, LogOptions::default()).expect("child open"));
    println!("ready");
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let name = format!("crash-{t}");
                let stream = StreamId::new(name.clone()).unwrap();
                let mut next = log
                    .read_stream(&stream, Direction::Backwards, ReadFrom::End, 1)
                    .await
                    .unwrap()
                    .first()
                    .map_or(0, |e| e.revision.0 + 1);
                // Far more rounds than a cycle lasts: the parent kills first.
                for round in 0..1_000_000usize {
                    let size = 1 + (round + t) % 4;
                    let events = (0..size)
                        .map(|i| EventData {
                            id: EventId::new(),
                            event_type: "crash.test.v1".to_string(),
                            metadata: Metadata::default(),
                            payload: payload(&name, next + i as u64, size, i),
                        })
                        .collect();
                    let expected = if next == 0 {
                        ExpectedRevision::NoStream
                    } else {
                        ExpectedRevision::Exact(Revision(next - 1))
                    };
                    let r = log.append(&stream, expected, events).await.unwrap();
                    println!("ack {name} {next} {size} {}", r.first_position.0);
                    next += size as u64;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    size: usize,
    first_position: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let cycles: usize = std::env::var("NEONHUB_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    // (stream, first revision) -> the acknowledged append.
    let mut acked: HashMap<(String, u64), Ack> = HashMap::new();
    let mut total_acks = 0usize;

    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child has opened the log, then let it append for a
        // random while and kill it mid-flight.
        // (The test harness prints lines of its own, and "test crash_child
        // ... " before the test's first line.)
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut early = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.ends_with("ready") => break,
                Ok(line) => early.push(line),
                Err(e) => {
                    let _ = child.kill();
                    panic!("cycle {cycle}: the child did not start: {e}; it printed {early:?}")
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();

        let mut this_cycle = 0;
        for line in rx.try_iter() {
            // A line cut by the kill has fewer fields: it was not reported.
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 5 || f[0] != "ack" {
                continue;
            }
            let (Ok(rev), Ok(size), Ok(pos)) = (f[2].parse(), f[3].parse(), f[4].parse()) else {
                continue;
            };
            let previous = acked.insert(
                (f[1].to_string(), rev),
                Ack {
                    size,
                    first_position: pos,
                },
            );
            assert!(
                previous.is_none(),
                "cycle {cycle}: revision {rev} of {} acknowledged twice",
                f[1]
            );
            this_cycle += 1;
        }
        total_acks += this_cycle;

        // Reopen and check.
        let log = EmbeddedLog::open(dir.path(), LogOptions::default())
            .unwrap_or_else(|e| panic!("cycle {cycle}: the log did not reopen: {e}"));
        let all = log.read_all(Position::START, usize::MAX).await.unwrap();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(
                e.position,
                Position(i as u64),
                "cycle {cycle}: positions not contiguous"
            );
        }
        assert_eq!(log.head().await.unwrap(), Position(all.len() as u64));
        // Every event is a whole batch member with the payload it was given,
        // and batches are contiguous in the global order.
        let mut i = 0;
        let mut next_revision: HashMap<&str, u64> = HashMap::new();
        while i < all.len() {
            let first = &all[i];
            let text = String::from_utf8_lossy(&first.payload).to_string();
            let parts: Vec<&str> = text.split('|').collect();
            let size: usize = parts[2].parse().unwrap();
            let stream = first.stream.as_str();
            let expected_rev = next_revision.entry(stream).or_default();
            assert_eq!(
                first.revision.0, *expected_rev,
                "cycle {cycle}: revision gap in {stream}"
            );
            for k in 0..size {
                let e = all.get(i + k).unwrap_or_else(|| {
                    panic!("cycle {cycle}: batch at position {i} is torn (log ends)")
                });
                assert_eq!(
                    e.stream, first.stream,
                    "cycle {cycle}: batch at {i} interleaved"
                );
                assert_eq!(
                    e.payload,
                    payload(stream, first.revision.0 + k as u64, size, k),
                    "cycle {cycle}: event at {} has the wrong content",
                    e.position
                );
                assert_eq!(e.revision.0, first.revision.0 + k as u64);
            }
            *expected_rev += size as u64;
            i += size;
        }
        // Every acknowledged append is there, where it was acknowledged.
        for ((stream, rev), ack) in &acked {
            let events = log
                .read_stream(
                    &StreamId::new(stream.clone()).unwrap(),
                    Direction::Forwards,
                    ReadFrom::Revision(Revision(*rev)),
                    ack.size,
                )
                .await
                .unwrap();
            assert_eq!(
                events.len(),
                ack.size,
                "cycle {cycle}: acknowledged append {stream}@{rev} lost"
            );
            assert_eq!(events[0].position, Position(ack.first_position));
        }
        log.verify()
            .unwrap_or_else(|e| panic!("cycle {cycle}: hash chain: {e}"));
        drop(log);
    }
    assert!(
        total_acks >= cycles,
        "the children acknowledged only {total_acks} appends in {cycles} cycles: the test did not test"
    );
    eprintln!("{cycles} kill -9 cycles, {total_acks} acknowledged appends checked");
}
