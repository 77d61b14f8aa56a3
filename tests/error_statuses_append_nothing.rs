//! Every client mistake gets its 4xx (and overload its 503) with a JSON
//! error body naming what is wrong, and no rejected request appends an event.

use std::sync::atomic::Ordering;

use neonhub_actors::{ConnectorMode, ConnectorsConfig, Secret};
use neonhub_test_support::service::InProcess;
use neonhub_test_support::{silent_server, wait_until};
use serde_json::{Value, json};

async fn check(hub: &InProcess, request: reqwest::RequestBuilder, status: u16, says: &str) {
    let head = hub.head().await;
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        status,
        "expected {status} for {says}"
    );
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(
        message.contains(says),
        "{message:?} should mention {says:?}"
    );
    assert_eq!(
        hub.head().await,
        head,
        "a rejected request appended events: {says}"
    );
}

#[actix_rt::test]
async fn client_mistakes_get_4xx_and_append_nothing() {
    let hub = InProcess::start().await;
    let c = &hub.client;
    let runs = hub.url("/v1/runs");
    let post_json = |body: &str| {
        c.post(&runs)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    // 400, naming the field.
    check(&hub, post_json("{\"agent\": "), 400, "malformed JSON").await;
    check(&hub, post_json("[]"), 400, "body").await;
    check(&hub, post_json(r#"{"agent": "echo"}"#), 400, "input").await;
    check(&hub, post_json(r#"{"input": {}}"#), 400, "agent").await;
    check(
        &hub,
        post_json(r#"{"agent": 7, "input": {}}"#),
        400,
        "agent",
    )
    .await;
    check(
        &hub,
        post_json(r#"{"agent": "echo", "input": {}, "run_id": "r1"}"#),
        400,
        "run_id",
    )
    .await;
    check(
        &hub,
        post_json(r#"{"agent": "echo", "input": {}, "colour": 1}"#),
        400,
        "colour",
    )
    .await;
    check(
        &hub,
        post_json(r#"{"agent": "echo", "intent": "echo", "input": {}}"#),
        400,
        "agent",
    )
    .await;
    let body = json!({"agent": "echo", "input": {}});
    check(
        &hub,
        c.post(hub.url("/v1/runs?wait=perhaps")).json(&body),
        400,
        "wait",
    )
    .await;
    check(
        &hub,
        c.post(hub.url("/v1/runs?timeout_ms=0")).json(&body),
        400,
        "timeout_ms",
    )
    .await;
    check(&hub, c.get(hub.url("/v1/runs?limit=0")), 400, "limit").await;
    check(&hub, c.get(hub.url("/v1/runs?limit=ten")), 400, "limit").await;
    check(&hub, c.get(hub.url("/v1/runs?status=done")), 400, "status").await;
    check(
        &hub,
        c.get(hub.url("/v1/runs?since=yesterday")),
        400,
        "since",
    )
    .await;
    check(&hub, c.get(hub.url("/v1/runs?cursor=abc")), 400, "cursor").await;
    check(&hub, c.get(hub.url("/v1/runs?agnet=echo")), 400, "agnet").await;
    check(&hub, c.get(hub.url("/v1/runs/not-a-uuid")), 400, "run_id").await;
    check(&hub, c.get(hub.url("/v1/events?from=soon")), 400, "from").await;
    check(
        &hub,
        c.get(hub.url("/v1/reports/agents?until=later")),
        400,
        "until",
    )
    .await;
    // 404.
    check(
        &hub,
        c.post(&runs).json(&json!({"agent": "nobody", "input": {}})),
        404,
        "nobody",
    )
    .await;
    check(
        &hub,
        c.post(&runs)
            .json(&json!({"intent": "fax.send", "input": {}})),
        404,
        "fax.send",
    )
    .await;
    let unknown = "01932c4e-7c1a-7000-8000-000000000404";
    check(
        &hub,
        c.get(hub.url(&format!("/v1/runs/{unknown}"))),
        404,
        unknown,
    )
    .await;
    check(
        &hub,
        c.get(hub.url(&format!("/v1/runs/{unknown}/events"))),
        404,
        unknown,
    )
    .await;
    check(
        &hub,
        c.get(hub.url("/v2/everything")),
        404,
        "/v2/everything",
    )
    .await;
    // 413: over the 1 MiB default, declared or not.
    let big = json!({"agent": "echo", "input": {"blob": "x".repeat(1024 * 1024)}}).to_string();
    check(&hub, post_json(&big), 413, "limit").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = c
        .post(&runs)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
    check(&hub, streamed, 413, "limit").await;
    // 415.
    check(
        &hub,
        c.post(&runs)
            .header("content-type", "text/plain")
            .body(body.to_string()),
        415,
        "application/json",
    )
    .await;
    check(
        &hub,
        c.post(&runs).body(body.to_string()),
        415,
        "application/json",
    )
    .await;
    // A body whose bytes mean something else than they read as: compressed
    // (not decoded here), or in another charset than JSON's UTF-8.
    for encoding in ["gzip", "br", "deflate"] {
        check(
            &hub,
            post_json(&body.to_string()).header("content-encoding", encoding),
            415,
            "Content-Encoding",
        )
        .await;
    }
    for charset in ["latin1", "iso-8859-1", "utf-16"] {
        check(
            &hub,
            c.post(&runs)
                .header(
                    "content-type",
                    format!("application/json; charset={charset}"),
                )
                .body(body.to_string()),
            415,
            "UTF-8",
        )
        .await;
    }
    // A key given twice, at the top or inside the input: which one was
    // meant is not for the server to guess.
    check(
        &hub,
        post_json(r#"{"agent": "echo", "agent": "sms", "input": {}}"#),
        400,
        "duplicate key \"agent\"",
    )
    .await;
    check(
        &hub,
        post_json(r#"{"agent": "echo", "input": {"to": "+1", "to": "+2"}}"#),
        400,
        "duplicate key \"to\"",
    )
    .await;
    // UTF-8 said explicitly is fine.
    let response = c
        .post(&runs)
        .header("content-type", "application/json; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // Each was counted under its status, and the good request still works.
    let metrics = hub.metrics().await;
    for status in ["400", "404", "413", "415"] {
        assert!(
            metrics.contains(&format!("status=\"{status}\"")),
            "{metrics}"
        );
    }
    let (status, ok) = hub.post_run(&body).await;
    assert_eq!(status, 200, "{ok}");
    hub.stop().await;
}

#[actix_rt::test]
async fn overload_is_503_and_appends_nothing() {
    let (twilio, release) = silent_server();
    let hub = InProcess::start_with(
        |mut o| {
            let mut connectors = ConnectorsConfig::mock();
            connectors.mode = Some(ConnectorMode::Live);
            connectors.gmail.token = Some(Secret::new("gmail-test-token"));
            connectors.slack.token = Some(Secret::new("slack-test-token"));
            connectors.twilio.account_sid = Some("AC123".into());
            connectors.twilio.auth_token = Some(Secret::new("twilio-test-token"));
            connectors.twilio.from = Some("+15005550006".into());
            connectors.twilio.base_url = twilio.clone();
            connectors.twilio.lookup_base_url = twilio.clone();
            connectors.llm.api_key = Some(Secret::new("llm-test-token"));
            o.connectors = connectors;
            o.max_in_flight = 1;
            o
        },
        |c| c,
    )
    .await;
    // One run holds the only slot, waiting on the silent Twilio.
    let slow = json!({"intent": "sms.send", "input": {"to": "+15550001234", "body": "hi"}});
    let response = hub
        .client
        .post(hub.url("/v1/runs?wait=false"))
        .json(&slow)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "running");
    // Its RunStarted and its Twilio call's RunStarted are in the log.
    wait_until("the run to hold its slot and call Twilio", || async {
        hub.service.stats().await.unwrap().in_flight == 1 && hub.head().await == 2
    })
    .await;
    check(
        &hub,
        hub.client
            .post(hub.url("/v1/runs"))
            .json(&json!({"agent": "echo", "input": {}})),
        503,
        "overloaded",
    )
    .await;
    let (_, agents) = hub.get("/v1/agents").await;
    assert!(
        agents["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["mode"] == "live")
    );
    assert!(!agents.to_string().contains("test-token"));
    release.store(true, Ordering::Release);
    hub.stop().await;
}
