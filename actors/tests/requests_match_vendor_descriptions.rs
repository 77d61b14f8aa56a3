//! Given the request shapes the vendors document for each method we call
//! (written down, with the link to the vendor's reference page, in
//! `vendor_shapes/shapes.json`: Gmail's REST reference and Google's OAuth
//! token endpoint, Slack's Web API methods, Twilio's 2010-04-01 Messages
//! and Lookup v2), when every live operation of the Gmail, Slack and
//! Twilio connectors (the in-doubt look-ups included) runs against a local
//! server, then each request it makes has the documented method, path,
//! authorization scheme and content type, carries every required parameter
//! under its documented name and in its documented place, and no parameter
//! the vendor does not document.

use std::collections::{BTreeMap, BTreeSet};

use neonhub_actors::{Connector, ConnectorsConfig, Gmail, Secret, Slack, StepRef, Twilio};
use neonhub_events::{RunId, Timestamp};
use neonhub_test_support::http::{Seen, TestServer};
use serde::Deserialize;
use serde_json::{Value, json};

/// The file the shapes are written down in.
const SHAPES: &str = include_str!("vendor_shapes/shapes.json");

/// One documented request (see the file's `about`).
#[derive(Debug, Deserialize)]
struct Shape {
    name: String,
    reference: String,
    method: String,
    path: String,
    auth: Option<String>,
    content_type: Option<String>,
    params_in: String,
    required: Vec<String>,
    optional: Vec<String>,
    #[serde(default)]
    objects: BTreeMap<String, Fields>,
}

/// The documented fields of an object parameter.
#[derive(Debug, Deserialize)]
struct Fields {
    required: Vec<String>,
    optional: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ShapesFile {
    shapes: Vec<Shape>,
}

fn shapes() -> BTreeMap<String, Shape> {
    let file: ShapesFile = serde_json::from_str(SHAPES).expect("shapes.json is valid");
    file.shapes
        .into_iter()
        .map(|shape| (shape.name.clone(), shape))
        .collect()
}

/// Whether `path` is `template`, each `{name}` standing for one non-empty
/// segment (`{upload_url}`: any path).
fn path_matches(template: &str, path: &str) -> bool {
    if template == "{upload_url}" {
        return path.starts_with('/');
    }
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| match t.split_once('{') {
            None => t == p,
            Some((prefix, rest)) => {
                let suffix = rest.split_once('}').map_or("", |(_, s)| s);
                p.len() > prefix.len() + suffix.len()
                    && p.starts_with(prefix)
                    && p.ends_with(suffix)
            }
        })
}

/// `names` checked against the documented `required` and `optional`.
fn check_names(
    what: &str,
    names: &BTreeSet<String>,
    required: &[String],
    optional: &[String],
    problems: &mut Vec<String>,
) {
    for name in required {
        if !names.contains(name) {
            problems.push(format!("{what}: required parameter `{name}` missing"));
        }
    }
    for name in names {
        if !required.contains(name) && !optional.contains(name) {
            problems.push(format!("{what}: parameter `{name}` is not documented"));
        }
    }
}

fn form_names(text: &str) -> BTreeSet<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(text).expect("a form-encoded text");
    pairs.into_iter().map(|(name, _)| name).collect()
}

/// What in `request` differs from `shape`.
fn mismatches(shape: &Shape, request: &Seen) -> Vec<String> {
    let mut problems = Vec::new();
    if request.method != shape.method {
        problems.push(format!(
            "method {} (documented {})",
            request.method, shape.method
        ));
    }
    if !path_matches(&shape.path, &request.path) {
        problems.push(format!("path {} (documented {})", request.path, shape.path));
    }
    let scheme = request
        .authorization
        .as_deref()
        .map(|value| value.split_once(' ').map_or(value, |(scheme, _)| scheme));
    if scheme != shape.auth.as_deref() {
        problems.push(format!(
            "authorization scheme {scheme:?} (documented {:?})",
            shape.auth
        ));
    }
    if request.content_type != shape.content_type {
        problems.push(format!(
            "content type {:?} (documented {:?})",
            request.content_type, shape.content_type
        ));
    }
    let (query, body) = (request.query.as_str(), request.body.as_str());
    let (in_query, in_body) = match shape.params_in.as_str() {
        "query" => (form_names(query), BTreeSet::new()),
        "form" => (BTreeSet::new(), form_names(body)),
        "json" => {
            let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let Some(object) = value.as_object() else {
                problems.push(format!("body is not a JSON object: {body}"));
                return problems;
            };
            for (name, fields) in &shape.objects {
                let items = match object.get(name) {
                    Some(Value::Array(items)) => items.clone(),
                    Some(one) => vec![one.clone()],
                    None => Vec::new(),
                };
                for item in items {
                    let keys = item
                        .as_object()
                        .map(|o| o.keys().cloned().collect())
                        .unwrap_or_default();
                    let what = format!("`{name}`");
                    check_names(
                        &what,
                        &keys,
                        &fields.required,
                        &fields.optional,
                        &mut problems,
                    );
                }
            }
            (BTreeSet::new(), object.keys().cloned().collect())
        }
        "bytes" | "none" => (BTreeSet::new(), BTreeSet::new()),
        other => panic!("{}: unknown params_in {other}", shape.name),
    };
    let (placed, elsewhere, place) = if shape.params_in == "query" {
        (in_query, body, "body")
    } else {
        (in_body, query, "query")
    };
    check_names(
        "request",
        &placed,
        &shape.required,
        &shape.optional,
        &mut problems,
    );
    if !elsewhere.is_empty() && shape.params_in != "bytes" {
        problems.push(format!("unexpected {place}: {elsewhere:?}"));
    }
    if shape.params_in == "none" && !body.is_empty() {
        problems.push(format!("unexpected body: {body:?}"));
    }
    problems
}

/// A stand-in for the three vendors, answering every documented path with
/// a success that lets each operation finish.
fn vendors() -> TestServer {
    TestServer::start(|req| {
        let path = req.path.as_str();
        let answer = if path == "/token" {
            json!({"access_token": "ya29.fresh", "expires_in": 3599, "token_type": "Bearer"})
        } else if path.starts_with("/gmail/") {
            json!({"id": "18c0ffee", "threadId": "18c0ffee", "messages": [],
                   "emailAddress": "me@example.com"})
        } else if path.starts_with("/upload/") {
            return (200, format!("OK - {}", req.body.len()));
        } else if path.starts_with("/api/") {
            json!({"ok": true, "channel": "C1", "ts": "1700000000.000200", "channels": [],
                   "user": {"id": "U1"}, "messages": [], "has_more": false,
                   "upload_url": format!("http://{}/upload/v1/F123", req.host),
                   "file_id": "F123", "files": [{"id": "F123"}]})
        } else {
            json!({"sid": "SM42", "status": "queued", "messages": [],
                   "next_page_uri": null, "phone_number": "+447911123456", "valid": true})
        };
        (200, answer.to_string())
    })
}

fn step() -> StepRef {
    StepRef {
        key: "notify#1".to_owned(),
        run_id: RunId::new(),
        started_at: Timestamp::now(),
    }
}

/// How an operation is driven.
enum Drive {
    Call,
    Step,
    Reconcile,
}

/// A connector, how it is driven, the operation and its input, and the
/// shapes of the requests it makes, in order.
type Case<'a> = (&'a dyn Connector, Drive, &'a str, Value, Vec<&'a str>);

#[actix::test]
async fn every_live_request_has_the_shape_its_vendor_documents() {
    let server = vendors();
    let base = &server.base_url;
    let gmail = Gmail::live(format!("{base}/gmail/v1"), Secret::new("ya29.static"));
    let refreshing = Gmail::from_config(
        &ConnectorsConfig::from_vars(|name| match name {
            "NEONHUB_GMAIL_CLIENT_ID" => Some("client-1.apps.googleusercontent.com".to_owned()),
            "NEONHUB_GMAIL_CLIENT_SECRET" => Some("GOCSPX-secret".to_owned()),
            "NEONHUB_GMAIL_REFRESH_TOKEN" => Some("1//0refresh".to_owned()),
            "NEONHUB_GMAIL_TOKEN_URL" => Some(format!("{base}/token")),
            "NEONHUB_GMAIL_BASE_URL" => Some(format!("{base}/gmail/v1")),
            _ => None,
        })
        .unwrap(),
    )
    .unwrap();
    assert!(refreshing.is_live());
    let slack = Slack::live(format!("{base}/api"), Secret::new("xoxb-1-2-abc"));
    let twilio = Twilio::live(
        format!("{base}/2010-04-01"),
        format!("{base}/v2"),
        "AC0123456789abcdef0123456789abcdef",
        Secret::new("twilio-auth-token"),
        "+15005550006",
    );
    let mail = json!({"to": "ada@example.com", "subject": "Hi", "body": "Hello"});
    let cases: Vec<Case<'_>> = vec![
        (
            &gmail,
            Drive::Step,
            "send",
            mail.clone(),
            vec!["gmail users.messages.send"],
        ),
        (
            &gmail,
            Drive::Call,
            "get_profile",
            json!({}),
            vec!["gmail users.getProfile"],
        ),
        (
            &gmail,
            Drive::Call,
            "list_messages",
            json!({"q": "from:bob", "max_results": 5}),
            vec!["gmail users.messages.list"],
        ),
        (
            &gmail,
            Drive::Call,
            "get_message",
            json!({"id": "abc123"}),
            vec!["gmail users.messages.get"],
        ),
        (
            &gmail,
            Drive::Reconcile,
            "send",
            mail,
            vec!["gmail users.messages.list"],
        ),
        (
            &refreshing,
            Drive::Call,
            "get_profile",
            json!({}),
            vec!["google oauth2 token refresh", "gmail users.getProfile"],
        ),
        (
            &slack,
            Drive::Step,
            "post_message",
            json!({"channel": "C1", "text": "Deploy done"}),
            vec!["slack chat.postMessage"],
        ),
        (
            &slack,
            Drive::Call,
            "list_channels",
            json!({"limit": 10}),
            vec!["slack conversations.list"],
        ),
        (
            &slack,
            Drive::Call,
            "user_info",
            json!({"user": "U1"}),
            vec!["slack users.info"],
        ),
        (
            &slack,
            Drive::Reconcile,
            "post_message",
            json!({"channel": "C1", "text": "Deploy done"}),
            vec!["slack conversations.history"],
        ),
        (
            &slack,
            Drive::Call,
            "upload_file",
            json!({"channel": "C1", "filename": "report.txt", "content": "hello", "title": "r"}),
            vec![
                "slack files.getUploadURLExternal",
                "slack upload to the upload_url",
                "slack files.completeUploadExternal",
            ],
        ),
        (
            &twilio,
            Drive::Step,
            "send_sms",
            json!({"to": "+447911123456", "body": "Hi & bye"}),
            vec!["twilio Message create"],
        ),
        (
            &twilio,
            Drive::Call,
            "sms_status",
            json!({"sid": "SM42"}),
            vec!["twilio Message fetch"],
        ),
        (
            &twilio,
            Drive::Call,
            "list_messages",
            json!({"page_size": 5, "to": "+447911123456"}),
            vec!["twilio Message list"],
        ),
        (
            &twilio,
            Drive::Reconcile,
            "send_sms",
            json!({"to": "+447911123456", "body": "Hi & bye"}),
            vec!["twilio Message list"],
        ),
        (
            &twilio,
            Drive::Call,
            "validate_number",
            json!({"number": "+447911123456"}),
            vec!["twilio Lookup v2 PhoneNumber fetch"],
        ),
    ];

    let shapes = shapes();
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (connector, drive, operation, input, expected) in cases {
        let before = server.hits();
        let look_up = if matches!(drive, Drive::Reconcile) {
            " (look-up)"
        } else {
            ""
        };
        let label = format!("{} {operation}{look_up}", connector.name());
        match drive {
            Drive::Call => {
                connector.call(operation, &input).await.unwrap();
            }
            Drive::Step => {
                connector
                    .call_step(&step(), operation, &input)
                    .await
                    .unwrap();
            }
            Drive::Reconcile => {
                connector.reconcile(&step(), operation, &input).await;
            }
        }
        let seen = server.seen()[before..].to_vec();
        assert_eq!(seen.len(), expected.len(), "{label}: {seen:#?}");
        for (request, name) in seen.iter().zip(expected) {
            let shape = &shapes[name];
            used.insert(name);
            for problem in mismatches(shape, request) {
                problems.push(format!(
                    "{label} as {name} ({}): {problem}",
                    shape.reference
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "requests that differ from the vendors' descriptions:\n{}",
        problems.join("\n")
    );
    let unused: Vec<&String> = shapes
        .keys()
        .filter(|n| !used.contains(n.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "shapes no operation was checked against: {unused:?}"
    );
    server.stop().await;
}

/// The checker itself finds what it must: a renamed, a missing and an
/// undocumented parameter, a wrong scheme and a wrong path.
#[test]
fn the_checker_notices_a_request_that_differs() {
    let shapes = shapes();
    let shape = &shapes["twilio Message create"];
    let request = |authorization: &str, path: &str, body: &str| Seen {
        method: "POST".to_owned(),
        path: path.to_owned(),
        query: String::new(),
        authorization: Some(authorization.to_owned()),
        content_type: Some("application/x-www-form-urlencoded".to_owned()),
        body: body.to_owned(),
        host: "127.0.0.1".to_owned(),
        headers: Vec::new(),
        at: std::time::Instant::now(),
    };
    let path = "/2010-04-01/Accounts/AC1/Messages.json";
    assert_eq!(
        mismatches(
            shape,
            &request("Basic eA==", path, "To=%2B1&From=%2B2&Body=x")
        ),
        Vec::<String>::new()
    );
    let renamed = mismatches(shape, &request("Basic eA==", path, "to=%2B1&Body=x"));
    assert_eq!(
        renamed,
        vec![
            "request: required parameter `To` missing".to_owned(),
            "request: parameter `to` is not documented".to_owned(),
        ]
    );
    let wrong = mismatches(
        shape,
        &request("Bearer x", "/2010-04-01/Messages.json", "To=1"),
    );
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(!path_matches(
        "/v2/PhoneNumbers/{PhoneNumber}",
        "/v2/PhoneNumbers/"
    ));
    assert!(path_matches("/a/{Sid}.json", "/a/SM1.json"));
    assert!(!path_matches("/a/{Sid}.json", "/a/.json"));
}
