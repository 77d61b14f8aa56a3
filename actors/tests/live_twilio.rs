//! Given Twilio credentials and base URLs pointing at a local server, when
//! the sms agent sends and the other Twilio operations are called, then
//! each request has the method, path, basic auth and form body the Twilio
//! API documents; a malformed number never reaches the network.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use neonhub_actors::{
    AgentOptions, ConnectorOptions, OrchestratorBuilder, Secret, SubmitRun, Twilio,
};
use neonhub_events::ErrorKind;
use neonhub_test_support as support;
use neonhub_test_support::http::TestServer;
use serde_json::{Value, json};

const SID: &str = "AC0123456789abcdef0123456789abcdef";

#[actix::test]
async fn live_twilio_speaks_the_twilio_api() {
    let (_dir, store) = support::store();
    let messages = format!("/2010-04-01/Accounts/{SID}/Messages.json");
    let status = format!("/2010-04-01/Accounts/{SID}/Messages/SM42.json");
    let (m, s) = (messages.clone(), status.clone());
    let server = TestServer::start(move |req| {
        let answer = match (req.method.as_str(), req.path.as_str()) {
            ("POST", p) if p == m => json!({"sid": "SM42", "status": "queued"}),
            ("GET", p) if p == m => json!({"messages": []}),
            ("GET", p) if p == s => json!({"sid": "SM42", "status": "delivered"}),
            ("GET", "/v2/PhoneNumbers/+447911123456") => {
                json!({"phone_number": "+447911123456", "valid": true, "country_code": "GB"})
            }
            _ => return (404, "{}".to_owned()),
        };
        (201, answer.to_string())
    });
    let twilio = Twilio::live(
        format!("{}/2010-04-01", server.base_url),
        format!("{}/v2", server.base_url),
        SID,
        Secret::new("twilio-auth-token"),
        "+15005550006",
    );
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .builtin_agents()
        .agent(|| support::Proxy, AgentOptions::default())
        .connector(twilio, ConnectorOptions::default())
        .start()
        .unwrap();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{SID}:twilio-auth-token"))
    );

    let sent = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "+447911123456", "body": "Hi & bye"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.result.unwrap()["sid"], json!("SM42"));
    let post = &server.seen()[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", messages.as_str())
    );
    assert_eq!(post.authorization.as_deref(), Some(basic.as_str()));
    assert_eq!(
        post.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        post.body,
        "To=%2B447911123456&From=%2B15005550006&Body=Hi+%26+bye"
    );

    let bad = orchestrator
        .send(SubmitRun::intent(
            "sms.send",
            json!({"to": "07911 123456", "body": "x"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bad.result.unwrap_err().kind, ErrorKind::Connector);
    assert_eq!(
        server.hits(),
        1,
        "a malformed number never reaches the network"
    );

    let call = |operation: &str, input: Value| {
        orchestrator.send(support::Proxy::submit("twilio", operation, input))
    };
    let st = call("sms_status", json!({"sid": "SM42"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.result.unwrap()["status"], json!("delivered"));
    let list = call("list_messages", json!({"page_size": 5}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.result.unwrap()["messages"], json!([]));
    let valid = call("validate_number", json!({"number": "+447911123456"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        valid.result.unwrap(),
        json!({"phone_number": "+447911123456", "valid": true, "country_code": "GB"})
    );
    let invalid = call("validate_number", json!({"number": "12"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(invalid.result.unwrap()["valid"], json!(false));

    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("GET", status.as_str())
    );
    assert_eq!(
        (seen[2].path.as_str(), seen[2].query.as_str()),
        (messages.as_str(), "PageSize=5")
    );
    assert_eq!(seen[3].path, "/v2/PhoneNumbers/+447911123456");
    for request in &seen {
        assert_eq!(request.authorization.as_deref(), Some(basic.as_str()));
    }
    server.stop().await;
}
