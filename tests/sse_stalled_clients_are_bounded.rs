//! Event feed clients that stop reading hold a bounded number of bytes
//! each, whatever the size of the events: the feed keeps at most
//! `FEED_BUFFER_BYTES` of events for one client (one larger event alone),
//! where it used to keep 256 events of any size (20 stalled clients and
//! runs of 100 KB took `serve` to 1.2 GB).

use std::io::Write;
use std::net::TcpStream;

use neonhub_test_support::service::{ServeProcess, run_body};
use serde_json::json;

const STALLED: usize = 20;
const RUNS: usize = 300;
const RUN_BYTES: usize = 100_000;
const MIB: u64 = 1 << 20;

#[actix_rt::test]
async fn stalled_feed_clients_hold_bounded_bytes() {
    let data = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(data.path(), &["--max-feed-clients", "64"]);
    let client = reqwest::Client::new();
    let text = "x".repeat(RUN_BYTES);
    let big = run_body("echo", json!({ "text": text }));
    // Warm up with the same runs and no feed: what a run of 100 KB costs
    // the allocator is in `before`.
    for _ in 0..RUNS / 2 {
        let status = client
            .post(format!("{}/v1/runs", serve.base))
            .json(&big)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let before = serve.rss_bytes();

    // Clients that follow the feed from its head and never read a byte.
    let stalled = stalled_clients(&serve, "/v1/events");

    for _ in 0..RUNS {
        let status = client
            .post(format!("{}/v1/runs", serve.base))
            .json(&big)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    // Each run is two events of about 100 KB (input, then the echoed
    // output): 60 MB went past each stalled client.
    let grown = serve.rss_bytes().saturating_sub(before);
    let bound = STALLED as u64 * 2 * MIB + 64 * MIB;
    eprintln!(
        "{STALLED} stalled feed clients: serve grew {} MiB from {} MiB",
        grown / MIB,
        before / MIB
    );
    assert!(
        grown <= bound,
        "{STALLED} stalled feed clients grew serve by {} MiB (bound {} MiB)",
        grown / MIB,
        bound / MIB
    );

    // Clients that catch up from the start of the log (90 MB of events)
    // and never read: the log's subscription reads ahead in bounded
    // batches too.
    let before = serve.rss_bytes();
    let catching_up = stalled_clients(&serve, "/v1/events?from=0");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let grown = serve.rss_bytes().saturating_sub(before);
    eprintln!(
        "{STALLED} stalled feed clients catching up: serve grew {} MiB",
        grown / MIB
    );
    assert!(
        grown <= bound,
        "{STALLED} stalled feed clients catching up grew serve by {} MiB (bound {} MiB)",
        grown / MIB,
        bound / MIB
    );
    drop((stalled, catching_up));
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}

/// `STALLED` connections that ask for `path` and never read.
fn stalled_clients(serve: &ServeProcess, path: &str) -> Vec<TcpStream> {
    (0..STALLED)
        .map(|_| {
            let mut s = TcpStream::connect(serve.addr).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect()
}
