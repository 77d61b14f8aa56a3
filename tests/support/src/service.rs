//! The root scenarios' set-up: the real service and its HTTP API
//! in-process, and the real `neonhub` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use neonhub::{DataDir, ServeConfig, Server, Service, ServiceOptions};
use serde_json::Value;

/// The service and its HTTP API in this process (inside an actix system).
pub struct InProcess {
    /// The service.
    pub service: Service,
    /// Its HTTP API.
    pub server: Server,
    /// `http://<address>` of the API.
    pub base: String,
    /// A client to call it with.
    pub client: reqwest::Client,
    /// The data directory (a temp dir).
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts both with the defaults, on a free port.
    pub async fn start() -> Self {
        Self::start_with(|o| o, |c| c).await
    }

    /// Starts both with the options and server configuration that
    /// `options` and `config` make of the defaults.
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

    /// The URL of `path` on the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The store's head position.
    pub async fn head(&self) -> u64 {
        self.service.store().head().await.unwrap().0
    }

    /// `POST /v1/runs` with `body`: the status and the JSON answer.
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

    /// `GET path`: the status and the JSON answer (`null` if not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The text of `GET /metrics`.
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

    /// Stops the server, then shuts the service down; returns the data
    /// directory.
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

/// The path of the `neonhub` binary cargo built for the tests running:
/// `CARGO_BIN_EXE_neonhub` as cargo sets it when it runs them, else (an
/// older cargo, a test binary run by hand) the binary of the same profile
/// (`target/<profile>/neonhub` beside `target/<profile>/deps/<test>`).
pub fn neonhub_exe() -> PathBuf {
    if let Some(exe) = std::env::var_os("CARGO_BIN_EXE_neonhub") {
        return PathBuf::from(exe);
    }
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("a test binary in target/<profile>/deps");
    let exe = profile.join(format!("neonhub{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "no neonhub binary at {} (run the test through cargo test)",
        exe.display()
    );
    exe
}

/// The `neonhub` binary under test, with no configuration from the
/// environment and mock connectors.
pub fn neonhub() -> Command {
    let mut command = Command::new(neonhub_exe());
    command
        .env_remove("NEONHUB_DATA_DIR")
        .env_remove("NEONHUB_TOKEN")
        .env_remove("NEONHUB_LISTEN")
        .env_remove("NEONHUB_STORE")
        .env_remove("NEONHUB_EVENTSTORE_URL")
        .env("NEONHUB_CONNECTORS", "mock")
        // Stop at SIGTERM without the drain grace (a test of it sets it).
        .env("NEONHUB_DRAIN_GRACE", "0");
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
    /// The process.
    pub child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base: String,
    /// Its data directory.
    pub data: PathBuf,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ServeProcess {
    /// Starts `neonhub --data-dir DATA serve --listen 127.0.0.1:0 EXTRA...`
    /// and waits for the line naming its address.
    pub fn spawn(data: &Path, extra: &[&str]) -> Self {
        Self::spawn_with(data, extra, |_| {})
    }

    /// Like [`Self::spawn`], with the command adjusted by `configure` first
    /// (environment variables for live connectors, say).
    pub fn spawn_with(data: &Path, extra: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        Self::spawn_in(Some(data), extra, configure)
    }

    /// Like [`Self::spawn_with`], without `--data-dir`: the data directory
    /// is the configuration file's, or `./data` (`data` is then empty).
    pub fn spawn_without_data_dir(extra: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        Self::spawn_in(None, extra, configure)
    }

    fn spawn_in(data: Option<&Path>, extra: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        let mut command = neonhub();
        // Before `configure`, which may send stderr elsewhere.
        command.stderr(Stdio::inherit());
        configure(&mut command);
        if let Some(data) = data {
            command.arg("--data-dir").arg(data);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
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
            data: data.map(Path::to_owned).unwrap_or_default(),
            stdout,
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the
    /// rest of stdout.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        self.send_term();
        let code = self.child.wait().unwrap().code();
        let mut rest = String::new();
        while self.stdout.read_line(&mut rest).unwrap_or(0) > 0 {}
        (code, rest)
    }

    /// The child's process id (to read `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set size, in bytes (`VmRSS` of
    /// `/proc/PID/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        // The shell's own `kill`: no dependency on a kill binary.
        let status = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: the process dies with no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    /// A test that panics does not leave its service running (holding the
    /// output pipe cargo waits on): the child is killed if it still runs.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET /v1/runs/{run_id}` of the service at `base`: the run's JSON.
pub async fn get_run(base: &str, run_id: &str) -> Value {
    reqwest::get(format!("{base}/v1/runs/{run_id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A JSON body of a run of `agent`.
pub fn run_body(agent: &str, input: Value) -> Value {
    serde_json::json!({ "agent": agent, "input": input })
}

/// The standard output of a command that must have succeeded (its stdout
/// and stderr are shown when it did not).
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}
