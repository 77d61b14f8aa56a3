//! At SIGTERM `serve` keeps its listener open for the drain grace
//! (`--drain-grace`): new work gets the documented 503 `shutting_down`,
//! `/readyz` turns 503 so a load balancer moves away, `/healthz` still
//! answers; only then does it close. A second signal ends the grace.

use std::time::{Duration, Instant};

use neonhub_test_support::service::ServeProcess;
use serde_json::{Value, json};

#[tokio::test]
async fn sigterm_drains_with_503s_before_the_listener_closes() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn_with(dir.path(), &[], |c| {
        c.env("NEONHUB_DRAIN_GRACE", "30");
    });
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", serve.base);
    let ready = client.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    serve.send_term();
    let began = Instant::now();
    loop {
        let ready = client.get(url("/readyz")).send().await;
        match ready {
            Ok(r) if r.status().as_u16() == 503 => break,
            Ok(r) => assert_eq!(r.status().as_u16(), 200),
            Err(e) => panic!("the listener closed at SIGTERM: {e}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "/readyz never turned 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = client
        .post(url("/v1/runs"))
        .json(&json!({"agent": "echo", "input": 1}))
        .send()
        .await
        .expect("the listener closed during the drain grace");
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "shutting_down", "{error}");
    let health = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // A second SIGTERM ends the grace: the process exits well within it.
    let (code, out) = serve.terminate();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "the second signal did not end the grace"
    );
}
