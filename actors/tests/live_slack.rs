//! Given a Slack bot token and a base URL pointing at a local server, when
//! the slack agent posts and the other Slack operations are called (file
//! upload included), then each request has the method, path, bearer token,
//! content type and body the Slack Web API documents (JSON as
//! `application/json; charset=utf-8`; a post carries its step in its
//! message metadata; the upload is `files.getUploadURLExternal`, form-encoded,
//! the bytes to the URL it gives, answered `OK - <length>` as text, then
//! `files.completeUploadExternal`), and `ok: false` answers fail, typed.

use neonhub_actors::{
    AgentOptions, ConnectorOptions, OrchestratorBuilder, Secret, Slack, SubmitRun,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

#[actix::test]
async fn live_slack_speaks_the_slack_web_api() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|req| {
        let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let answer = match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/api/chat.postMessage") if body["channel"] == json!("C404") => {
                json!({"ok": false, "error": "channel_not_found"})
            }
            ("POST", "/api/chat.postMessage") => {
                json!({"ok": true, "channel": body["channel"], "ts": "1700000000.000200"})
            }
            ("GET", "/api/conversations.list") => json!({"ok": true, "channels": [{"id": "C1"}]}),
            ("GET", "/api/users.info") => json!({"ok": true, "user": {"id": "U1"}}),
            ("POST", "/api/files.getUploadURLExternal") => json!({
                "ok": true,
                "upload_url": format!("http://{}/upload/F123", req.host),
                "file_id": "F123",
            }),
            // The upload service answers with text, not JSON.
            ("POST", "/upload/F123") => return (200, format!("OK - {}", req.body.len())),
            ("POST", "/api/files.completeUploadExternal") => {
                json!({"ok": true, "files": [{"id": "F123", "title": "report"}]})
            }
            _ => return (404, "{}".to_owned()),
        };
        (200, answer.to_string())
    });
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .agent(|| support::Proxy, AgentOptions::default())
        .connector(
            Slack::live(
                format!("{}/api", server.base_url),
                Secret::new("xoxb-1-2-abc"),
            ),
            ConnectorOptions::default(),
        )
        .start()
        .unwrap();

    let posted = orchestrator
        .send(SubmitRun::intent(
            "slack.notify",
            json!({"channel": "C1", "text": "Deploy done"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(posted.result.unwrap()["ts"], json!("1700000000.000200"));
    let step = support::child_runs(&store, posted.run_id).await[0];
    let post = &server.seen()[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/chat.postMessage")
    );
    assert_eq!(post.authorization.as_deref(), Some("Bearer xoxb-1-2-abc"));
    assert_eq!(
        post.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&post.body).unwrap(),
        json!({"channel": "C1", "text": "Deploy done", "metadata": {
            "event_type": "neonhub_step",
            "event_payload": {"step_run_id": step.to_string()},
        }}),
        "a step's post carries the step in its metadata"
    );

    let missing = orchestrator
        .send(SubmitRun::intent(
            "slack.notify",
            json!({"channel": "C404", "text": "x"}),
        ))
        .await
        .unwrap()
        .unwrap();
    let error = missing.result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connector);
    assert!(
        error
            .message
            .contains("slack error channel_not_found; retrying cannot help"),
        "{}",
        error.message
    );

    let call = |operation: &str, input: Value| {
        orchestrator.send(support::Proxy::submit("slack", operation, input))
    };
    let channels = call("list_channels", json!({"limit": 10}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channels.result.unwrap()["channels"][0]["id"], json!("C1"));
    let user = call("user_info", json!({"user": "U1"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.result.unwrap()["user"]["id"], json!("U1"));
    let upload = call(
        "upload_file",
        json!({"channel": "C1", "filename": "report.txt", "content": "hello file", "title": "report"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(upload.result.unwrap()["files"][0]["id"], json!("F123"));

    let seen = server.seen();
    let routes: Vec<(String, String)> = seen[2..]
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let expected = [
        ("GET", "/api/conversations.list"),
        ("GET", "/api/users.info"),
        ("POST", "/api/files.getUploadURLExternal"),
        ("POST", "/upload/F123"),
        ("POST", "/api/files.completeUploadExternal"),
    ];
    assert_eq!(
        routes,
        expected.map(|(m, p)| (m.to_owned(), p.to_owned())).to_vec()
    );
    assert_eq!(seen[2].query, "limit=10");
    assert_eq!(seen[3].query, "user=U1");
    assert_eq!(seen[4].body, "filename=report.txt&length=10");
    assert_eq!(
        seen[4].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[5].body, "hello file");
    assert_eq!(seen[5].authorization, None, "the upload URL needs no token");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[6].body).unwrap(),
        json!({"files": [{"id": "F123", "title": "report"}], "channel_id": "C1"})
    );
    assert_eq!(
        seen[6].content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    for i in [2, 3, 4, 6] {
        assert_eq!(
            seen[i].authorization.as_deref(),
            Some("Bearer xoxb-1-2-abc")
        );
    }
    server.stop().await;
}
