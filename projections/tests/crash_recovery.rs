//! A child process projects the log while the parent SIGKILLs it at random
//! moments: after every kill the table (and its metrics) equals the log's
//! prefix up to the table's checkpoint, never an event twice or one skipped.
//!
//! The child is this test binary itself, re-run on the ignored test
//! `crash_child` with `NEONHUB_CRASH_CHILD` naming the work directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neonhub_events::Position;
use neonhub_projections::fixture::Rng;
use neonhub_projections::{
    AgentRunsProjection, AsOf, Progress, ProjectionRunner, RebuildOptions, RunQueries, rebuild,
};
use neonhub_test_support::projections as support;

const CHILD_ENV: &str = "NEONHUB_CRASH_CHILD";
/// Kills to reach (cycles whose child finished before its kill do not count).
const KILLS: usize = 50;
/// A bound on cycles, so the test always ends.
const MAX_CYCLES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of killed_projection_always_equals_a_log_prefix"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let seed: u64 = std::env::var("NEONHUB_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let store = support::open_store(&dir.join("log"));
    let projection = AgentRunsProjection::open(dir.join("table.sqlite")).unwrap();
    // Small, varying batches: many commits for the kill to land between (or in).
    let batch = 1 + Rng::new(seed).below(16) as usize;
    let mut runner = ProjectionRunner::new(store, projection).with_batch_size(batch);
    runner.catch_up().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_projection_always_equals_a_log_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let mut log = support::TestLog::open();
        log.append(&support::events(1_000, 21)).await;
        let head = log.store.head().await.unwrap();
        drop(log.store);
        std::fs::rename(log.dir.path().join("log"), dir.path().join("log")).unwrap();
        head
    };
    let table = dir.path().join("table.sqlite");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(0x5eed);
    let started = Instant::now();
    let (mut killed_mid_way, mut completed, mut restarts_from_zero) = (0, 0, 0);
    // Kills that landed while the child was applying batches (its checkpoint
    // moved but had not reached the head).
    let mut killed_while_projecting = 0;
    let mut last_checkpoint = Position::START;

    let mut cycles = 0;
    for cycle in 0..MAX_CYCLES {
        if killed_mid_way >= KILLS {
            break;
        }
        cycles += 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("NEONHUB_CRASH_SEED", cycle.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.below(140)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let killed = !status.success();
        if killed {
            killed_mid_way += 1;
        } else {
            completed += 1;
        }

        if !table.exists() {
            continue;
        }
        // Reopen it as a restart would (a child killed while creating the
        // file leaves it without its schema, which opening creates), then:
        // the table equals the log's prefix up to its checkpoint.
        drop(AgentRunsProjection::open(&table).unwrap());
        let checkpoint = RunQueries::open(&table).unwrap().checkpoint().unwrap();
        let store = support::open_store(&dir.path().join("log"));
        let expected = dir.path().join(format!("expected-{cycle}.sqlite"));
        let expected_rows = if checkpoint == Position::START {
            Vec::new()
        } else {
            rebuild(
                &store,
                &expected,
                RebuildOptions::default()
                    .as_of(AsOf::Position(Position(checkpoint.0 - 1)))
                    .progress(Progress::Hidden),
            )
            .await
            .unwrap();
            support::rows(&expected)
        };
        drop(store);
        assert_eq!(
            support::rows(&table),
            expected_rows,
            "cycle {cycle}, checkpoint {checkpoint}"
        );
        if checkpoint > Position::START {
            assert_eq!(
                support::metrics_text(&table),
                support::metrics_text(&expected),
                "cycle {cycle}"
            );
        }
        if killed && checkpoint != last_checkpoint && checkpoint < head {
            killed_while_projecting += 1;
        }
        last_checkpoint = checkpoint;
        // Once caught up, start over from an empty table to keep killing
        // the projection mid-way.
        if checkpoint == head {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", table.display()));
            }
            restarts_from_zero += 1;
            last_checkpoint = Position::START;
        }
    }
    assert!(
        killed_mid_way >= KILLS,
        "only {killed_mid_way} of {cycles} children were killed"
    );
    assert!(
        killed_while_projecting >= 10,
        "only {killed_while_projecting} kills landed while projecting"
    );
    eprintln!(
        "{cycles} cycles in {:?}: {killed_mid_way} killed ({killed_while_projecting} while projecting), \
         {completed} completed, {restarts_from_zero} full passes",
        started.elapsed()
    );
}
