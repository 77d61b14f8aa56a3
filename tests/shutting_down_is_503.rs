//! Once the server drains (the first step of a graceful stop), new runs and
//! event feeds get 503 `shutting_down` with `Retry-After` and append
//! nothing, `/readyz` turns 503 so load balancers move away, and reads and
//! `/healthz` keep answering.

use neonhub_test_support::service::InProcess;
use serde_json::{Value, json};

#[actix_rt::test]
async fn a_draining_server_refuses_new_work_with_503_and_appends_nothing() {
    let hub = InProcess::start().await;
    let (status, run) = hub.post_run(&json!({"agent": "echo", "input": 1})).await;
    assert_eq!(status, 200);
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let head = hub.head().await;

    hub.server.drain();
    for (method, path) in [
        ("POST", "/v1/runs"),
        ("POST", "/v1/runs?wait=false"),
        ("GET", "/v1/events?from=0"),
        ("GET", "/readyz"),
    ] {
        let request = match method {
            "POST" => hub
                .client
                .post(hub.url(path))
                .json(&json!({"agent": "echo", "input": 2})),
            _ => hub.client.get(hub.url(path)),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "{method} {path}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "shutting_down", "{body}");
    }
    assert_eq!(hub.head().await, head, "a refused run appended events");

    // Reads and liveness go on while draining.
    assert_eq!(hub.get("/healthz").await.0, 200);
    assert_eq!(hub.get(&format!("/v1/runs/{run_id}")).await.0, 200);
    assert_eq!(hub.get("/v1/reports/agents").await.0, 200);
    hub.stop().await;
}
