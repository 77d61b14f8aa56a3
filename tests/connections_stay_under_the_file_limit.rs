//! Clients cannot take the file descriptors the service needs for its own
//! files: `serve` accepts at most `--max-connections` at once (by default
//! what its open-file limit leaves after a reserve for the log, the table
//! and the connections' own SQLite handles), and queues the rest in the
//! listen backlog. Today's code accepted until the limit was hit: 1,000
//! stalled clients at the usual 1024-file limit locked everyone out and
//! left no descriptor for a new log segment or a table read.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use neonhub_test_support::service::ServeProcess;

const NOFILE: u64 = 512;
const STALLED: usize = 700;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[actix_rt::test]
async fn stalled_clients_leave_descriptors_for_the_service() {
    let data = tempfile::tempdir().unwrap();
    let prlimit = neonhub_test_support::tools::required("NEONHUB_PRLIMIT", "prlimit", None);
    let serve = ServeProcess::spawn_with(data.path(), &[], |command| {
        // `prlimit --nofile=N:N -- neonhub ...`: the child starts with a
        // 512-file limit, soft and hard.
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
        let mut wrapped = std::process::Command::new(&prlimit);
        wrapped
            .arg(format!("--nofile={NOFILE}:{NOFILE}"))
            .arg("--")
            .arg(program)
            .args(args);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        *command = wrapped;
    });
    let client = reqwest::Client::new();
    let run = serde_json::json!({"agent": "echo", "input": {"n": 1}});
    let status = client
        .post(format!("{}/v1/runs", serve.base))
        .json(&run)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // Clients that send half a body and stall.
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let mut s = TcpStream::connect(serve.addr).unwrap();
            write!(
                s,
                "POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"agent\""
            )
            .unwrap();
            s
        })
        .collect();
    // Let the server accept what it will.
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(open_fds(serve.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let headroom = 128;
    assert!(
        most + headroom <= NOFILE as usize,
        "with {STALLED} stalled clients serve held {most} descriptors of {NOFILE}: \
         less than {headroom} left for its own files"
    );

    // Once they go, the service answers as before.
    drop(stalled);
    let status = tokio::time::timeout(
        neonhub_test_support::PATIENCE,
        client
            .post(format!("{}/v1/runs", serve.base))
            .json(&run)
            .send(),
    )
    .await
    .expect("answered once the stalled clients left")
    .unwrap()
    .status();
    assert_eq!(status, 200);
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
