//! Given Gmail credentials and a base URL pointing at a local server (live
//! mode chosen by the configuration), when the email agent sends and the
//! other Gmail operations are called, then each request has the method,
//! path, bearer token and body the Gmail API documents; the message has
//! CRLF line endings and non-ASCII header text as RFC 2047 encoded words,
//! and a header value with a line break is refused before anything is sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use neonhub_actors::{AgentOptions, ConnectorsConfig, OrchestratorBuilder, Secret, SubmitRun};
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

#[actix::test]
async fn live_gmail_speaks_the_gmail_api() {
    let (_dir, store) = support::store();
    let server = TestServer::start(|req| {
        let answer = match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/gmail/v1/users/me/messages/send") => {
                json!({"id": "18c0ffee", "threadId": "18c0ffee", "labelIds": ["SENT"]})
            }
            ("GET", "/gmail/v1/users/me/profile") => {
                json!({"emailAddress": "me@example.com", "messagesTotal": 5})
            }
            ("GET", "/gmail/v1/users/me/messages") => json!({"messages": [{"id": "a"}]}),
            ("GET", "/gmail/v1/users/me/messages/abc123") => json!({"id": "abc123"}),
            _ => return (404, json!({"error": "no such route"}).to_string()),
        };
        (200, answer.to_string())
    });
    let mut config = ConnectorsConfig::default();
    config.gmail.token = Some(Secret::new("ya29.test-token"));
    config.gmail.base_url = format!("{}/gmail/v1", server.base_url);
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .agent(|| support::Proxy, AgentOptions::default())
        .builtin_connectors(&config)
        .unwrap()
        .start()
        .unwrap();

    let sent = orchestrator
        .send(SubmitRun::intent(
            "email.send",
            json!({"to": "ada@example.com", "subject": "Grüße ✉", "body": "Line one\nLine two"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sent.result.clone().unwrap()["message_id"],
        json!("18c0ffee")
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let send = &seen[0];
    assert_eq!(send.method, "POST");
    assert_eq!(send.path, "/gmail/v1/users/me/messages/send");
    assert_eq!(
        send.authorization.as_deref(),
        Some("Bearer ya29.test-token")
    );
    assert_eq!(send.content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_str(&send.body).unwrap();
    let raw = URL_SAFE_NO_PAD
        .decode(body["raw"].as_str().unwrap())
        .unwrap();
    let message = String::from_utf8(raw).unwrap();
    assert!(
        message.starts_with("To: ada@example.com\r\nSubject: =?UTF-8?B?R3LDvMOfZSDinIk=?=\r\n"),
        "{message}"
    );
    assert!(
        message.ends_with("\r\n\r\nLine one\r\nLine two"),
        "{message}"
    );
    let (head, _) = message.split_once("\r\n\r\n").unwrap();
    assert!(head.is_ascii(), "{message}");
    assert!(
        !message.replace("\r\n", "").contains(['\r', '\n']),
        "{message:?}"
    );

    let injected = orchestrator
        .send(support::Proxy::submit(
            "gmail",
            "send",
            json!({"to": "ada@example.com", "from": "me@example.com\nBcc: all@example.com",
                   "subject": "s", "body": "b"}),
        ))
        .await
        .unwrap()
        .unwrap();
    let error = injected.result.unwrap_err();
    assert!(error.message.contains("one line"), "{}", error.message);
    assert_eq!(server.hits(), 1, "a header with a line break sent nothing");

    let call = |operation: &str, input: Value| {
        orchestrator.send(support::Proxy::submit("gmail", operation, input))
    };
    let profile = call("get_profile", json!({})).await.unwrap().unwrap();
    assert_eq!(
        profile.result.unwrap()["emailAddress"],
        json!("me@example.com")
    );
    let list = call("list_messages", json!({"q": "from:bob", "max_results": 5}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.result.unwrap()["messages"][0]["id"], json!("a"));
    let one = call("get_message", json!({"id": "abc123"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.result.unwrap()["id"], json!("abc123"));

    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("GET", "/gmail/v1/users/me/profile")
    );
    assert_eq!(seen[2].query, "q=from%3Abob&maxResults=5");
    assert_eq!(seen[3].path, "/gmail/v1/users/me/messages/abc123");
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer ya29.test-token")
        );
    }
    server.stop().await;
}
