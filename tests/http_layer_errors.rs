//! Errors of the HTTP layer itself: a request head over the API's limits
//! gets a JSON 414 or 431 saying what was wrong, and what actix-http
//! refuses before any route sees it (a request that does not parse, a head
//! over its own limits) is never logged at ERROR: such clients are counted
//! in `neonhub_http_client_errors_total` and at most one WARN a minute
//! says so. Today's code answered those with empty bodies and logged each
//! at ERROR, so any client could flood the log.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;

use neonhub_test_support::service::{ServeProcess, sample};

/// Sends `request` on a new connection; the status and the body.
fn exchange(serve: &ServeProcess, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream
        .set_read_timeout(Some(neonhub_test_support::PATIENCE))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n").into_bytes()
}

#[test]
fn http_layer_errors_are_json_and_never_flood_the_log() {
    let data = tempfile::tempdir().unwrap();
    let stderr_path = data.path().join("serve.stderr");
    let stderr = File::create(&stderr_path).unwrap();
    let serve = ServeProcess::spawn_with(data.path(), &[], |command| {
        command.stderr(stderr);
    });

    let long_target = format!("/v1/runs?agent={}", "a".repeat(9_000));
    let (status, body) = exchange(&serve, &get(&long_target, ""));
    assert_eq!(status, 414, "{body}");
    assert!(body.contains(r#""code":"uri_too_long""#), "{body}");

    let many: String = (0..70).map(|i| format!("X-Extra-{i}: 1\r\n")).collect();
    let (status, body) = exchange(&serve, &get("/v1/agents", &many));
    assert_eq!(status, 431, "{body}");
    assert!(body.contains(r#""code":"headers_too_large""#), "{body}");

    let big = format!("X-Big: {}\r\n", "b".repeat(20_000));
    let (status, body) = exchange(&serve, &get("/v1/agents", &big));
    assert_eq!(status, 431, "{body}");
    assert!(body.contains("16384 bytes"), "{body}");

    // What actix-http refuses itself, 50 times each.
    let huge_target = format!("/{}", "u".repeat(70_000));
    for _ in 0..50 {
        let bad_length =
            b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec();
        assert_eq!(exchange(&serve, &bad_length).0, 400);
        let status = exchange(&serve, &get(&huge_target, "")).0;
        assert!(status == 400 || status == 414 || status == 431, "{status}");
    }

    let (_, metrics) = exchange(&serve, &get("/metrics", ""));
    let counted = sample(&metrics, "neonhub_http_client_errors_total");
    assert!(counted >= 100.0, "counted {counted} client errors");

    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:#?}");
    let warns = log.lines().filter(|l| l.contains("client's error")).count();
    assert!(warns <= 1, "{warns} WARN lines for client errors:\n{log}");
}
