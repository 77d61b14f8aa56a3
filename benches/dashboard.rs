//! The dashboard's first page on a table of 1M runs, in headless Chromium:
//! a real `neonhub serve` (release build) on a data directory of
//! `NEONHUB_BENCH_RUNS` (default 1,000,000) finished runs (2M events) and
//! their AgentRun table, opened `NEONHUB_BENCH_LOADS` (default 7) times in
//! a fresh page through chromedriver. Each load's time is the page's own
//! clock (`performance.now()`, from the start of navigation) when the runs
//! table first shows its whole first page. Prints each, the median and the
//! max. Issue 15's goal: at most 1 s.
//!
//! Run: `cargo bench --bench dashboard` (needs `chromium` and
//! `chromedriver`: `tests/install-tools` installs them). The data directory is built
//! once under `target/neonhub-bench/fixtures/dashboard-<runs>/` (a few
//! minutes) and reused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use neonhub_events::{Durability, EmbeddedLog, LogOptions, SharedStore};
use neonhub_projections::{Progress, RebuildOptions, rebuild};
use neonhub_test_support::{tools, workload};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A data directory of `runs` finished runs and their table, built once.
fn data_dir(runs: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/neonhub-bench/fixtures")
        .join(format!("dashboard-{runs}"));
    let done = dir.join("BUILT");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the fixture directory");
    let options = LogOptions::default().with_durability(Durability::Buffered);
    let log = workload::finished_runs_log(&dir.join("log"), runs, false, options.clone());
    let rt = workload::runtime();
    let store: SharedStore = Arc::new(EmbeddedLog::open(&log, options).expect("open the log"));
    let summary = rt
        .block_on(rebuild(
            &store,
            &dir.join("agent_runs.sqlite"),
            RebuildOptions::default().progress(Progress::Hidden),
        ))
        .expect("build the table");
    eprintln!("built {runs} runs: {} events in the table", summary.events);
    drop(store);
    std::fs::write(&done, runs.to_string()).expect("mark the fixture built");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(driver: &str, profile: &Path) -> Client {
    let chromium = tools::required("NEONHUB_CHROMIUM", "chromium", Some("/usr/bin/chromium"));
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// The page's clock when the runs table shows `rows` rows, polled.
async fn first_page_ms(browser: &Client, rows: usize) -> f64 {
    let script = format!(
        "return document.querySelectorAll('#runs-body tr[data-run-id]').length >= {rows} \
         ? performance.now() : null"
    );
    let began = Instant::now();
    loop {
        let answer = browser
            .execute(&script, Vec::new())
            .await
            .unwrap_or(Value::Null);
        if let Some(ms) = answer.as_f64() {
            return ms;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the runs table never showed {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("dashboard: benchmark");
        return;
    }
    let runs = env_or("NEONHUB_BENCH_RUNS", 1_000_000);
    let loads = env_or("NEONHUB_BENCH_LOADS", 7);
    // Built before any runtime runs: the fixture's builder has its own.
    let data = data_dir(runs);
    workload::runtime().block_on(measure(&data, runs, loads));
}

/// Serves `data` and loads the dashboard's first page `loads` times.
async fn measure(data: &Path, runs: u64, loads: u64) {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_neonhub"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("NEONHUB_CONNECTORS", "mock")
        .env("NEONHUB_DRAIN_GRACE", "0")
        .env_remove("NEONHUB_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start neonhub serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let serve = Killed(serve);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address serve prints")
        .to_owned();

    let chromedriver = tools::required(
        "NEONHUB_CHROMEDRIVER",
        "chromedriver",
        Some("/usr/bin/chromedriver"),
    );
    let port = free_port();
    let _driver = Killed(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let driver = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let began = Instant::now();
    while !http
        .get(format!("{driver}/status"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "chromedriver never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = browser(&driver, profile.path()).await;

    // The first page: the dashboard's default page size.
    let rows = 50;
    let mut times = Vec::new();
    for i in 0..=loads {
        browser.goto("about:blank").await.unwrap();
        browser.goto(&format!("{base}/#/runs")).await.unwrap();
        let ms = first_page_ms(&browser, rows).await;
        if ms > 1000.0 {
            // Where a slow load spent its time: the page's requests.
            let timings = browser
                .execute(
                    "return performance.getEntriesByType('resource')\
                     .map(e => [e.name, Math.round(e.startTime), Math.round(e.duration)])",
                    Vec::new(),
                )
                .await
                .unwrap_or(Value::Null);
            println!("slow load {i}: requests [url, start ms, duration ms]: {timings}");
        }
        // The first load fills the browser's and the table's caches.
        if i == 0 {
            println!("warm-up load: {ms:.0} ms");
        } else {
            println!("load {i}: {ms:.0} ms");
            times.push(ms);
        }
    }
    browser.close().await.unwrap();
    times.sort_by(f64::total_cmp);
    println!(
        "dashboard first page ({rows} rows) on {runs} runs: median {:.0} ms, max {:.0} ms over {} loads",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    drop(serve);
}
