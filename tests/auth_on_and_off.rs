//! With a token configured every route but /healthz needs it (401 without
//! or with a wrong one, never echoing it); without a token all is open.

use neonhub::Token;
use neonhub_test_support::service::InProcess;
use serde_json::json;

const TOKEN: &str = "tok-3f9a1c-very-secret";

#[actix_rt::test]
async fn a_configured_token_guards_every_route_but_healthz() {
    let hub = InProcess::start_with(|o| o, |c| c.with_token(Token::new(TOKEN).unwrap())).await;
    let c = &hub.client;
    let body = json!({"agent": "echo", "input": {"x": 1}});
    let head = hub.head().await;
    for (method, path) in [
        ("POST", "/v1/runs"),
        ("GET", "/v1/runs"),
        ("GET", "/v1/agents"),
        ("GET", "/v1/reports/agents"),
        ("GET", "/v1/events"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic dG9rOnRvaw=="),
            Some(TOKEN),
        ] {
            let mut request = match method {
                "POST" => c.post(hub.url(path)).json(&body),
                _ => c.get(hub.url(path)),
            };
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                401,
                "{method} {path} with {auth:?}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let text = response.text().await.unwrap();
            let error: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(error["error"]["code"], "unauthorized");
            assert!(
                !text.contains(TOKEN) && !text.contains("wrong-token"),
                "{text}"
            );
        }
    }
    assert_eq!(hub.head().await, head, "refused requests appended nothing");
    let health = c.get(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let bearer = format!("Bearer {TOKEN}");
    let response = c
        .post(hub.url("/v1/runs"))
        .header("authorization", &bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let metrics = c
        .get(hub.url("/metrics"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("status=\"401\""));
    assert!(!metrics.contains(TOKEN));
    hub.stop().await;
}

#[actix_rt::test]
async fn without_a_token_everything_is_open() {
    let hub = InProcess::start().await;
    let (status, run) = hub.post_run(&json!({"agent": "echo", "input": 1})).await;
    assert_eq!(status, 200, "{run}");
    for path in ["/v1/runs", "/v1/agents", "/metrics", "/readyz", "/healthz"] {
        let response = hub.client.get(hub.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    // A token sent anyway is ignored, not refused.
    let response = hub
        .client
        .get(hub.url("/v1/runs"))
        .header("authorization", "Bearer anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    hub.stop().await;
}
