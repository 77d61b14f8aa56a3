//! `POST /v1/runs` with the `echo` agent over loopback: a real `neonhub
//! serve` (release build, durable embedded log) driven by a real load
//! generator (`wrk`, or `oha`; `benches/install-load-generator.sh` installs
//! one) at 256 connections. Prints runs/s, p50/p99 latency, errors, the
//! runs the log holds afterwards (every 200 must be a durable run), and the
//! server's RSS.
//!
//! Run: `bash benches/install-load-generator.sh && cargo bench --bench http`.
//! `NEONHUB_BENCH_HTTP_AGENT=1` measures instead an agent served over HTTP
//! that answers at once (a local actix-web server in this process, declared
//! in a configuration file) against `echo`, alternately on the same build,
//! `NEONHUB_BENCH_ROUNDS` rounds at `NEONHUB_BENCH_CONNECTIONS` (set 64 for
//! issue 14's figure), and prints the ratio.
//! `NEONHUB_BENCH_ONE_STEP=1` measures in the same way the `email` agent on
//! the mock Gmail (one step: four events a run) against `echo` (issue 10's
//! one-step figure, as a client of the API sees it).
//! `NEONHUB_BENCH_SECS` (default 10) sets the load's duration,
//! `NEONHUB_BENCH_CONNECTIONS` (default 256) the connections;
//! `NEONHUB_BENCH_BASELINE=BIN` compares an older binary with this build,
//! alternately, `NEONHUB_BENCH_ROUNDS` (default 5) rounds. Data lives under
//! `target/neonhub-bench/` and is removed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BODY: &str = r#"{"agent":"echo","input":{"n":1}}"#;
const HTTP_AGENT_BODY: &str = r#"{"agent":"fast","input":{"n":1}}"#;
const ONE_STEP_BODY: &str =
    r#"{"intent":"email.send","input":{"to":"a@example.com","subject":"s","body":"b"}}"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn find(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// What the load generator measured.
#[derive(Debug, Default)]
struct Load {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `1.23ms`, `456.00us`, `1.02s` as milliseconds.
fn millis(text: &str) -> f64 {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

fn run_wrk(wrk: &Path, url: &str, body: &str, connections: u64, secs: u64, dir: &Path) -> Load {
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )
    .expect("write the wrk script");
    let output = Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{text}");
    let mut load = Load::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => load.p50_ms = millis(v),
            ["99%", v] => load.p99_ms = millis(v),
            ["Requests/sec:", v] => load.per_second = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                load.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    load
}

fn run_oha(oha: &Path, url: &str, body: &str, connections: u64, secs: u64) -> Load {
    let output = Command::new(oha)
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "-z",
            &format!("{secs}s"),
            "-c",
            &connections.to_string(),
        ])
        .args([
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            url,
        ])
        .output()
        .expect("run oha");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("oha's JSON report");
    let ok = report["statusCodeDistribution"]["200"]
        .as_u64()
        .unwrap_or(0);
    let all: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    let failed: u64 = report["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    Load {
        requests: all,
        per_second: report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: report["latencyPercentiles"]["p50"]
            .as_f64()
            .unwrap_or(f64::NAN)
            * 1000.0,
        p99_ms: report["latencyPercentiles"]["p99"]
            .as_f64()
            .unwrap_or(f64::NAN)
            * 1000.0,
        errors: all - ok + failed,
    }
}

/// `GET path` of `base` over a plain TCP request (no client crate): the
/// whole response, head and body.
fn get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to serve");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// `GET /readyz`'s body: `{"status", "checkpoint", "head"}`.
fn readyz(base: &str) -> serde_json::Value {
    let response = get(base, "/readyz");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_default()
}

/// The log's head.
fn head(base: &str) -> u64 {
    readyz(base)["head"].as_u64().unwrap_or(0)
}

/// One measured load on a fresh `serve` of `binary`: what the generator
/// saw, the runs the log holds afterwards, and the server's RSS (MiB).
fn measure(
    binary: &Path,
    tool: &Path,
    is_wrk: bool,
    connections: u64,
    secs: u64,
) -> (Load, u64, f64) {
    measure_body(binary, tool, is_wrk, connections, secs, &Workload::ECHO)
}

/// What one measured load posts: its body, `serve --config config`, and
/// how many events each of its runs appends.
struct Workload<'a> {
    body: &'a str,
    config: Option<&'a Path>,
    events_per_run: u64,
}

impl Workload<'_> {
    const ECHO: Workload<'static> = Workload {
        body: BODY,
        config: None,
        events_per_run: 2,
    };
}

/// [`measure`] with `workload`.
fn measure_body(
    binary: &Path,
    tool: &Path,
    is_wrk: bool,
    connections: u64,
    secs: u64,
    workload: &Workload<'_>,
) -> (Load, u64, f64) {
    let (body, config) = (workload.body, workload.config);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/neonhub-bench");
    std::fs::create_dir_all(&root).expect("create target/neonhub-bench");
    let dir = tempfile::tempdir_in(&root).expect("a temp dir");
    let mut serve = Command::new(binary)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(
            config
                .map(|c| vec!["--config".into(), c.as_os_str().to_owned()])
                .unwrap_or_default(),
        )
        .env("NEONHUB_CONNECTORS", "mock")
        .env("NEONHUB_DRAIN_GRACE", "0")
        .env_remove("NEONHUB_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start neonhub serve");
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address serve prints")
        .to_owned();
    let url = format!("{base}/v1/runs");
    println!(
        "POST {url} {body} ({}, durable) with {} at {connections} connections for {secs} s",
        binary.display(),
        tool.display()
    );
    let began = Instant::now();
    let load = if is_wrk {
        run_wrk(tool, &url, body, connections, secs, dir.path())
    } else {
        run_oha(tool, &url, body, connections, secs)
    };
    let elapsed = began.elapsed();
    // Runs cut off when the generator stopped may still finish: wait for the
    // log to stop growing.
    let mut events = head(&base);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = head(&base);
        if now == events {
            break;
        }
        events = now;
    }
    let rss = rss_mib(serve.id());
    let runs = events / workload.events_per_run;
    // Every run succeeded (a failed run is a 200 too), as the table says
    // once it has caught up with the log.
    let caught_up = Instant::now();
    while readyz(&base)["checkpoint"].as_u64().unwrap_or(0) < events
        && caught_up.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = get(&base, "/v1/runs?status=failed&limit=1");
    assert!(
        failed.contains(r#""runs":[]"#),
        "runs failed under the load: {failed}"
    );
    println!(
        "| {connections} | {:.0} | {:.2} | {:.2} | {} | {} | {runs} | {rss:.0} |",
        load.per_second, load.p50_ms, load.p99_ms, load.errors, load.requests
    );
    println!(
        "runs/s {:.0}, p50 {:.2} ms, p99 {:.2} ms, errors {}, {} requests answered, {runs} runs in the log ({} events), serve RSS {rss:.0} MiB, {:.1} s",
        load.per_second,
        load.p50_ms,
        load.p99_ms,
        load.errors,
        load.requests,
        events,
        elapsed.as_secs_f64()
    );
    assert!(
        runs >= load.requests.saturating_sub(load.errors),
        "fewer runs in the log than 200s answered"
    );
    let kill = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &serve.id().to_string()])
        .status()
        .expect("signal serve");
    assert!(kill.success());
    let status = serve.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    (load, runs, rss)
}

/// An agent served over HTTP that answers `{"ok": true}` at once, on its
/// own thread (one actix-web worker); returns its URL.
fn start_fast_agent() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(|| {
                actix_web::App::new().route(
                    "/run",
                    // It reads the request, as every agent does: actix-web
                    // closes a connection whose request body was left
                    // unread, and neonhub would connect again for each run.
                    actix_web::web::post().to(|_request: actix_web::web::Bytes| async {
                        actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(r#"{"ok":true}"#)
                    }),
                )
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the fast agent");
            tx.send(server.addrs()[0]).expect("send the address");
            server.run().await.expect("the fast agent");
        });
    });
    let addr = rx.recv().expect("the fast agent's address");
    format!("http://{addr}/run")
}

/// Issue 14's figure: the HTTP agent's runs/s against echo's, alternately,
/// on this build.
fn http_agent_against_echo(this: &Path, tool: &Path, is_wrk: bool, connections: u64, secs: u64) {
    let url = start_fast_agent();
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        format!("[[agents]]\nname = \"fast\"\nintents = [\"fast.do\"]\nurl = \"{url}\"\n"),
    )
    .expect("write the configuration");
    let workload = Workload {
        body: HTTP_AGENT_BODY,
        config: Some(&config),
        events_per_run: 2,
    };
    against_echo(
        "HTTP agent",
        &workload,
        this,
        tool,
        is_wrk,
        connections,
        secs,
    );
}

/// `label`'s `workload`, runs/s against echo's, alternately, on this build,
/// `NEONHUB_BENCH_ROUNDS` (default 3) rounds.
fn against_echo(
    label: &str,
    workload: &Workload<'_>,
    this: &Path,
    tool: &Path,
    is_wrk: bool,
    connections: u64,
    secs: u64,
) {
    let rounds = env_or("NEONHUB_BENCH_ROUNDS", 3);
    let (mut echo, mut other, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let e = measure(this, tool, is_wrk, connections, secs).0.per_second;
        let (load, runs, _) = measure_body(this, tool, is_wrk, connections, secs, workload);
        assert_eq!(load.errors, 0, "the {label}'s runs failed");
        assert!(runs > 0);
        let o = load.per_second;
        println!(
            "round: echo {e:.0} runs/s, {label} {o:.0} runs/s, ratio {:.3}",
            o / e
        );
        echo.push(e);
        other.push(o);
        ratios.push(o / e);
    }
    println!(
        "{label} against echo over {rounds} rounds at {connections} connections: echo median \
         {:.0} runs/s, {label} median {:.0} runs/s, median ratio {:.3} (min {:.3}, max {:.3})",
        median(echo),
        median(other),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("http: benchmark");
        return;
    }
    let secs = env_or("NEONHUB_BENCH_SECS", 10);
    let connections = env_or("NEONHUB_BENCH_CONNECTIONS", 256);
    let (Some(tool), is_wrk) = (match (find("wrk"), find("oha")) {
        (Some(w), _) => (Some(w), true),
        (None, Some(o)) => (Some(o), false),
        (None, None) => (None, false),
    }) else {
        eprintln!("no load generator: run `bash benches/install-load-generator.sh` (wrk or oha)");
        std::process::exit(2);
    };
    let this = PathBuf::from(env!("CARGO_BIN_EXE_neonhub"));
    if std::env::var_os("NEONHUB_BENCH_HTTP_AGENT").is_some() {
        http_agent_against_echo(&this, &tool, is_wrk, connections, secs);
        return;
    }
    if std::env::var_os("NEONHUB_BENCH_ONE_STEP").is_some() {
        let workload = Workload {
            body: ONE_STEP_BODY,
            config: None,
            events_per_run: 4,
        };
        against_echo(
            "one step",
            &workload,
            &this,
            &tool,
            is_wrk,
            connections,
            secs,
        );
        return;
    }
    // A/B: `NEONHUB_BENCH_BASELINE=/path/to/an/older/neonhub` measures it and
    // this build alternately, `NEONHUB_BENCH_ROUNDS` (default 5) rounds each,
    // and prints the ratio of the medians.
    let Some(baseline) = std::env::var_os("NEONHUB_BENCH_BASELINE").map(PathBuf::from) else {
        measure(&this, &tool, is_wrk, connections, secs);
        return;
    };
    let rounds = env_or("NEONHUB_BENCH_ROUNDS", 5);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let old = measure(&baseline, &tool, is_wrk, connections, secs)
            .0
            .per_second;
        let new = measure(&this, &tool, is_wrk, connections, secs)
            .0
            .per_second;
        println!(
            "round: baseline {old:.0} runs/s, this build {new:.0} runs/s, ratio {:.3}",
            new / old
        );
        a.push(old);
        b.push(new);
        ratios.push(new / old);
    }
    println!(
        "A/B over {rounds} rounds: baseline median {:.0} runs/s, this build median {:.0} runs/s, \
         median of the per-round ratios {:.3} (min {:.3}, max {:.3})",
        median(a),
        median(b),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
}
