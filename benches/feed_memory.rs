//! Memory under stalled event-feed clients: a real `neonhub serve`
//! (release build, durable embedded log) with `NEONHUB_BENCH_STALLED`
//! (default 100) clients that open `GET /v1/events` and never read, while
//! `NEONHUB_BENCH_RUNS` (default 10,000) echo runs of
//! `NEONHUB_BENCH_RUN_KB` (default 100) KB each are submitted, 16 at a
//! time. Prints serve's RSS before, its peak (sampled every 50 ms) and
//! after, and the runs/s. Issue 15's goal: the peak stays at or under 300
//! MB.
//!
//! Run: `cargo bench --bench feed_memory`. Data lives under
//! `target/neonhub-bench/` and is removed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("feed_memory: benchmark");
        return;
    }
    let stalled = env_or("NEONHUB_BENCH_STALLED", 100);
    let runs = env_or("NEONHUB_BENCH_RUNS", 10_000);
    let run_kb = env_or("NEONHUB_BENCH_RUN_KB", 100);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    let dir = tempfile::tempdir_in(&root).expect("a temp dir");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_neonhub"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--max-feed-clients"])
        .arg((stalled + 8).to_string())
        .env("NEONHUB_CONNECTORS", "mock")
        .env("NEONHUB_DRAIN_GRACE", "0")
        .env_remove("NEONHUB_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start neonhub serve");
    let pid = serve.id();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address serve prints")
        .to_owned();
    let addr = base.trim_start_matches("http://").to_owned();
    let before = rss_kib(pid);

    let clients: Vec<TcpStream> = (0..stalled)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(s, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();

    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let body = Arc::new(serde_json::json!({
        "agent": "echo",
        "input": {"text": "x".repeat(usize::try_from(run_kb * 1000).unwrap())},
    }));
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, body, next, url) = (
                client.clone(),
                Arc::clone(&body),
                Arc::clone(&next),
                format!("{base}/v1/runs"),
            );
            tokio::spawn(async move {
                let mut failed = 0u64;
                while next.fetch_add(1, Ordering::Relaxed) < runs {
                    let ok = client
                        .post(&url)
                        .json(&*body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    failed += u64::from(!ok);
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for worker in workers {
        failed += worker.await.unwrap();
    }
    let elapsed = began.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let after = rss_kib(pid);
    let peak = peak.load(Ordering::Relaxed).max(after);
    println!(
        "| {stalled} | {runs} | {run_kb} | {} | {} | {} | {:.0} | {failed} |",
        before / 1024,
        peak / 1024,
        after / 1024,
        runs as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{stalled} stalled feed clients, {runs} runs of {run_kb} KB: serve RSS {} MiB before, \
         {} MiB peak, {} MiB after; {:.0} runs/s; {failed} failed",
        before / 1024,
        peak / 1024,
        after / 1024,
        runs as f64 / elapsed.as_secs_f64()
    );
    drop(clients);
    let kill = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &pid.to_string()])
        .status()
        .expect("signal serve");
    assert!(kill.success());
    let status = serve.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    assert_eq!(failed, 0, "runs failed");
}
