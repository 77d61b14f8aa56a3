//! Issue 11's figure: 10,000 SMS through one sending number limited to
//! 10/s, and through 10 numbers at 10/s each, on a real `neonhub serve`
//! (release build, durable embedded log, mock Twilio with the per-number
//! limit set: `--twilio-rate-per-number 10/s --twilio-rate off`). Prints
//! the achieved sends per second per number (the limit must hold within
//! 10%) and the runs that failed (none may: a send over the limit waits
//! its turn).
//!
//! A send waits at most its run's deadline (the `sms` agent's 30 s
//! timeout), so the client keeps at most 200 runs per number in flight:
//! 20 s of queue at 10/s. One number takes 1,000 s; ten, 100 s.
//!
//! Run: `cargo bench --bench sms_pacing` (`NEONHUB_BENCH_SMS`, default
//! 10000, sets the sends; `NEONHUB_BENCH_NUMBERS`, default `10,1`, the
//! numbers of sending numbers measured, in order).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Runs in flight per sending number: 20 s of queue at 10/s, under the
/// agent's 30 s timeout.
const IN_FLIGHT_PER_NUMBER: usize = 200;
/// The per-number limit measured.
const RATE: f64 = 10.0;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Sends `total` SMS spread over `numbers` sending numbers; returns the
/// elapsed time and the runs that did not succeed.
async fn measure(total: usize, numbers: usize) -> (Duration, usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    let dir = tempfile::tempdir_in(&root).expect("a temp dir");
    // One `serve` per sending number would be needed for Twilio's real
    // numbers; the mock takes the number from the run's input (`from`).
    let mut serve = Command::new(env!("CARGO_BIN_EXE_neonhub"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--twilio-rate-per-number", "10/s", "--twilio-rate", "off"])
        .args(["--max-in-flight", "4096"])
        .env("NEONHUB_CONNECTORS", "mock")
        .env("NEONHUB_DRAIN_GRACE", "0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start neonhub serve");
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address serve prints")
        .to_owned();
    let client = reqwest::Client::new();
    // Each number its own slots: a number never has more than 20 s queued.
    let slots: Vec<Arc<Semaphore>> = (0..numbers)
        .map(|_| Arc::new(Semaphore::new(IN_FLIGHT_PER_NUMBER)))
        .collect();
    let began = Instant::now();
    let sends: Vec<_> = (0..total)
        .map(|n| {
            let (client, base) = (client.clone(), base.clone());
            let slots = Arc::clone(&slots[n % numbers]);
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let from = format!("+1555100{:04}", n % numbers);
                let body = json!({"agent": "sms", "input":
                    {"to": format!("+1555200{:04}", n % 1000), "from": from, "body": "paced"}});
                let run: Value = client
                    .post(format!("{base}/v1/runs?timeout_ms=120000"))
                    .json(&body)
                    .send()
                    .await
                    .expect("post")
                    .json()
                    .await
                    .expect("json");
                (run["status"] == "succeeded")
                    .then_some(())
                    .ok_or_else(|| format!("{}: {}", run["status"], run["error"]["message"]))
            })
        })
        .collect();
    let mut failed = Vec::new();
    for send in sends {
        if let Err(why) = send.await.unwrap() {
            failed.push(why);
        }
    }
    let elapsed = began.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    (elapsed, failed.len(), failed.into_iter().take(3).collect())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sms_pacing: benchmark");
        return;
    }
    let total: usize = env_or("NEONHUB_BENCH_SMS", "10000").parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for numbers in env_or("NEONHUB_BENCH_NUMBERS", "10,1").split(',') {
        let numbers: usize = numbers.trim().parse().unwrap();
        let (elapsed, failed, why) = runtime.block_on(measure(total, numbers));
        let per_number = total as f64 / numbers as f64 / elapsed.as_secs_f64();
        println!(
            "{total} SMS through {numbers} sending number(s) limited to {RATE}/s each: {:.1} s, \
             {per_number:.2} sends/s per number ({:.1}% of the limit), {failed} failed {why:?}",
            elapsed.as_secs_f64(),
            100.0 * per_number / RATE
        );
        assert_eq!(failed, 0, "runs failed instead of waiting: {why:?}");
        assert!(
            (per_number - RATE).abs() <= RATE * 0.1,
            "the per-number limit did not hold within 10%: {per_number:.2}/s"
        );
    }
}
