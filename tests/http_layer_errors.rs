//! Errors of the HTTP layer itself: a request head over the API's limits
//! gets a JSON 414 or 431 saying what was wrong; what actix-http refuses
//! before any route sees it (a request that does not parse, a head over its
//! own limits, a head not sent in time) gets the same JSON error body
//! (through the patch in `vendor/actix-http`; upstream's are empty) and is
//! never logged at ERROR: such clients are counted in
//! `neonhub_http_client_errors_total` and at most one WARN a minute says
//! so. Earlier code answered those with empty bodies and logged each at
//! ERROR, so any client could flood the log.

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

/// `body` is exactly one JSON error `{"error": {"code": code, "message"}}`
/// whose message says `says`.
fn assert_json_error(body: &str, code: &str, says: &str) {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    assert_eq!(value["error"]["code"], code, "{body}");
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{body}");
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

    // What actix-http refuses itself, before any route: a JSON body too
    // (upstream's are empty; vendor/actix-http carries the patch).
    let bad_length = b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec();
    let (status, body) = exchange(&serve, &bad_length);
    assert_eq!(status, 400, "{body}");
    assert_json_error(&body, "invalid_request", "not valid HTTP/1.1");
    let over_its_count: String = (0..100).map(|i| format!("X-Extra-{i}: 1\r\n")).collect();
    let (status, body) = exchange(&serve, &get("/v1/agents", &over_its_count));
    assert_eq!(status, 431, "{body}");
    assert_json_error(&body, "headers_too_large", "at most 64 headers");
    let huge_target = format!("/{}", "u".repeat(70_000));
    let (status, body) = exchange(&serve, &get(&huge_target, ""));
    assert!(status == 400 || status == 431, "{status}: {body}");
    assert!(
        body.starts_with(r#"{"error":{"code":""#),
        "{status}: {body:?}"
    );
    // Half a head, then silence: actix-http's own 408 after its head timeout.
    let (status, body) = exchange(&serve, b"GET /v1/agents HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(status, 408, "{body}");
    assert_json_error(&body, "request_timeout", "did not arrive in time");

    // 50 times each: never a line each in the log.
    for _ in 0..50 {
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
