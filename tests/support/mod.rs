//! Helpers the scenarios share: the real server in-process, the real binary
//! as a child process, and waiting on conditions (never fixed sleeps).

#![allow(dead_code, unreachable_pub)]

pub mod load;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use neonhub::{DataDir, ServeConfig, Server, Service, ServiceOptions};
use serde_json::Value;

/// How long any condition may take before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `condition` (with a growing pause) until it holds; panics naming
/// `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(1);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The service and its HTTP API in this process (inside an actix system).
pub struct InProcess {
    pub service: Service,
    pub server: Server,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    pub async fn start() -> Self {
        Self::start_with(|o| o, |c| c).await
    }

    pub async fn start_with(
        options: impl FnOnce(ServiceOptions) -> ServiceOptions,
        config: impl FnOnce(ServeConfig) -> ServeConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::start(options(ServiceOptions::new(DataDir::new(dir.path()))))
            .await
            .unwrap();
        let mut serve = ServeConfig::new("127.0.0.1:0".parse().unwrap());
        serve.workers = 2;
        let server = Server::start(&service, &config(serve)).unwrap();
        let base = format!("http://{}", server.local_addr());
        Self {
            service,
            server,
            base,
            client: reqwest::Client::new(),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn head(&self) -> u64 {
        self.service.store().head().await.unwrap().0
    }

    pub async fn post_run(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/v1/runs"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.server.stop().await.unwrap();
        self.service
            .shutdown(Duration::from_secs(30))
            .await
            .unwrap();
        self.dir
    }
}

/// The value of one Prometheus sample (`name{labels}`), 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The `neonhub` binary under test.
pub fn neonhub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_neonhub"));
    command
        .env_remove("NEONHUB_DATA_DIR")
        .env_remove("NEONHUB_TOKEN")
        .env_remove("NEONHUB_LISTEN")
        .env_remove("NEONHUB_STORE")
        .env_remove("NEONHUB_EVENTSTORE_URL")
        .env("NEONHUB_CONNECTORS", "mock");
    command
}

/// Runs `neonhub --data-dir DIR ARGS...` to completion.
pub fn run_cli(data: &Path, args: &[&str]) -> Output {
    neonhub()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

/// `neonhub serve` as a child process on a free port.
pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub data: PathBuf,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ServeProcess {
    pub fn spawn(data: &Path, extra: &[&str]) -> Self {
        let mut child = neonhub()
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            base: format!("http://{addr}"),
            data: data.to_owned(),
            stdout,
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the
    /// rest of stdout.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        // The shell's own `kill`: no dependency on a kill binary.
        let status = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap().code();
        let mut rest = String::new();
        while self.stdout.read_line(&mut rest).unwrap_or(0) > 0 {}
        (code, rest)
    }

    /// SIGKILL: the process dies with no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A JSON body of a run of `agent`.
pub fn run_body(agent: &str, input: Value) -> Value {
    serde_json::json!({ "agent": agent, "input": input })
}
