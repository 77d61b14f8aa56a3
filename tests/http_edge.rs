//! The HTTP edge speaks HTTP as clients expect: the `Bearer` scheme in any
//! case (RFC 7235: auth schemes are case-insensitive), and `HEAD` on every
//! `GET` route with the `GET` answer's status and headers and no body.

use neonhub::Token;
use neonhub_test_support::service::InProcess;

const TOKEN: &str = "tok-51c0de-edge";

#[actix_rt::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let hub = InProcess::start_with(|o| o, |c| c.with_token(Token::new(TOKEN).unwrap())).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = hub
            .client
            .get(hub.url("/v1/agents"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    for wrong in ["bearer", "bearer wrong", "Basic dG9rOnRvaw==", TOKEN] {
        let response = hub
            .client
            .get(hub.url("/v1/agents"))
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{wrong}");
    }
    hub.stop().await;
}

#[actix_rt::test]
async fn head_answers_every_get_route_without_a_body() {
    let hub = InProcess::start().await;
    let (status, run) = hub
        .post_run(&serde_json::json!({"agent": "echo", "input": {"x": 1}}))
        .await;
    assert_eq!(status, 200);
    let id = run["run_id"].as_str().unwrap().to_owned();
    for path in [
        "/v1/runs".to_owned(),
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{id}/events"),
        "/v1/reports/agents".to_owned(),
        "/v1/agents".to_owned(),
        "/metrics".to_owned(),
        "/healthz".to_owned(),
        "/readyz".to_owned(),
        "/v1/events".to_owned(),
    ] {
        let get = hub.client.get(hub.url(&path)).send().await.unwrap();
        let head = tokio::time::timeout(
            neonhub_test_support::PATIENCE,
            hub.client.head(hub.url(&path)).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("HEAD {path} did not answer"))
        .unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path}"
        );
        let body = tokio::time::timeout(neonhub_test_support::PATIENCE, head.bytes())
            .await
            .unwrap_or_else(|_| panic!("HEAD {path}: the body did not end"))
            .unwrap();
        assert!(body.is_empty(), "HEAD {path} sent {} bytes", body.len());
    }
    let missing = hub.client.head(hub.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    hub.stop().await;
}

/// Method names are the client's to choose: each made-up one used to be a
/// new `/metrics` series (60 KB names included), so traffic could grow
/// `/metrics` without bound. They are counted together as `other`.
#[actix_rt::test]
async fn made_up_methods_share_one_metrics_label() {
    let hub = InProcess::start().await;
    let long = "Q".repeat(60_000);
    let made_up = ["FOOBAR", "BREW", "PROPFINDX", long.as_str()];
    for name in made_up {
        let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
        let answered = hub.client.request(method, hub.url("/v1/runs")).send().await;
        if let Ok(response) = answered {
            assert!(response.status().is_client_error(), "{name:.10}");
        }
    }
    let metrics = hub.metrics().await;
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    for name in made_up {
        assert!(
            !metrics.contains(&format!("method=\"{name}\"")),
            "{name:.10} has a series of its own"
        );
    }
    hub.stop().await;
}

/// A page of `GET /v1/runs` is bounded in bytes, not only in rows: with
/// runs of nearly 1 MB each, `limit=200` answered one body of all of them
/// (about 400 MB for 200). The page is shorter instead, with a
/// `next_cursor`, and following the cursors gives every run exactly once.
#[actix_rt::test]
async fn a_page_of_runs_is_bounded_in_bytes() {
    let hub = InProcess::start().await;
    let big = "x".repeat(900_000);
    let mut submitted = Vec::new();
    for i in 0..10 {
        let (status, run) = hub
            .post_run(&serde_json::json!({"agent": "echo", "input": {"i": i, "text": big}}))
            .await;
        assert_eq!(status, 200, "{run:.200}");
        submitted.push(run["run_id"].as_str().unwrap().to_owned());
    }
    // A run's answer comes from its journal; the table may be a batch
    // behind. List once it has every event.
    neonhub_test_support::wait_until("the table to reach the log's head", || async {
        let ready: serde_json::Value = match hub.client.get(hub.url("/readyz")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => return false,
        };
        ready["checkpoint"].is_u64() && ready["checkpoint"] == ready["head"]
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => hub.url(&format!("/v1/runs?limit=200&cursor={c}")),
            None => hub.url("/v1/runs?limit=200"),
        };
        let body = hub
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            body.len() <= 8 << 20,
            "a page of {} bytes: not bounded",
            body.len()
        );
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        pages += 1;
        for run in page["runs"].as_array().unwrap() {
            seen.push(run["run_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 50, "the cursors do not end");
    }
    assert!(pages > 1, "10 runs of 1.8 MB each came in one page");
    seen.sort();
    submitted.sort();
    assert_eq!(seen, submitted, "every run exactly once");
    hub.stop().await;
}

/// A body that never finishes is timed out (`--body-timeout`): 408 with a
/// JSON body, the connection closed, nothing appended. Before, such a
/// connection was held for ever, and about 1,000 of them locked every
/// client out at the usual limit of 1024 open files.
#[actix_rt::test]
async fn a_body_that_never_finishes_is_timed_out() {
    use std::io::{Read, Write};
    let hub = InProcess::start_with(
        |o| o,
        |c| c.with_body_timeout(std::time::Duration::from_millis(500)),
    )
    .await;
    let head = hub.head().await;
    let addr = hub.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(
                b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"agent\": \"echo\",",
            )
            .unwrap();
        let mut answer = Vec::new();
        // The server answers, then closes: read to the end.
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert_eq!(
        hub.head().await,
        head,
        "a timed-out request appended events"
    );
    hub.stop().await;
}

/// `wait=false` answers 202 once `RunStarted` is durable, every time, even
/// for a run that ends at once (the black-box report saw 200 with the full
/// row 14% of the time).
#[actix_rt::test]
async fn wait_false_always_answers_202() {
    let hub = InProcess::start().await;
    for i in 0..200 {
        let response = hub
            .client
            .post(hub.url("/v1/runs?wait=false"))
            .json(&serde_json::json!({"agent": "echo", "input": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202, "submission {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "running", "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
    hub.stop().await;
}

/// Each open event feed holds a subscription and a buffer: their number is
/// bounded (`--max-feed-clients`). One past the bound gets 503 `overloaded`
/// with `Retry-After`; a feed that closes frees its place.
#[actix_rt::test]
async fn event_feeds_are_bounded_in_number() {
    let hub = InProcess::start_with(|o| o, |c| c.with_max_feed_clients(2)).await;
    let open = || hub.client.get(hub.url("/v1/events")).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(second.status().as_u16(), 200);
    let refused = open().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "overloaded", "{error}");
    drop(first);
    // The server notices the closed connection and frees its place.
    neonhub_test_support::wait_until("a closed feed frees its place", || async {
        let again = open().await.unwrap();
        again.status().as_u16() == 200
    })
    .await;
    drop(second);
    hub.stop().await;
}
