//! The OpenAPI description served at `/openapi.json` matches the server
//! that serves it: schemathesis (from PyPI, installed by `tests/install-tools`)
//! calls every operation of a real `neonhub serve` with requests made from
//! the description, valid and invalid, and checks each answer against it
//! (no 5xx, only documented statuses, content types, headers and bodies).
//! The event feed never ends, which schemathesis cannot read: it is checked
//! here by hand. And every operation described is one the server routes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use neonhub_test_support::service::{ServeProcess, run_body};
use neonhub_test_support::tools;
use serde_json::{Value, json};

const TOKEN: &str = "tok-0pen-api-5ch3ma";

/// The schemathesis to run: `NEONHUB_SCHEMATHESIS`, else `schemathesis`
/// on the `PATH`, else the one `tests/install-tools` puts in `target/tools`.
fn schemathesis() -> PathBuf {
    tools::required(
        "NEONHUB_SCHEMATHESIS",
        "schemathesis",
        Some("target/tools/venv/bin/schemathesis"),
    )
}

/// A `serve` with a token, and a client that sends it.
struct Hub {
    serve: ServeProcess,
    client: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Hub {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let serve = ServeProcess::spawn_with(data.path(), &[], |command| {
            command.env("NEONHUB_TOKEN", TOKEN);
        });
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Hub {
            serve,
            client,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.serve.base)
    }

    async fn submit(&self, body: &Value) -> Value {
        let response = self
            .client
            .post(self.url("/v1/runs"))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{body}");
        response.json().await.unwrap()
    }

    /// A few runs of each kind; their ids (agent and connector runs).
    async fn runs(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for body in [
            run_body("echo", json!({"text": "hello"})),
            run_body("echo", json!(null)),
            json!({"intent": "sms.send", "input": {"to": "+15550100", "topic": "the spring sale"}}),
        ] {
            let run = self.submit(&body).await;
            ids.push(run["run_id"].as_str().unwrap().to_owned());
        }
        let (_, page) = self.get("/v1/runs?limit=1000").await;
        for run in page["runs"].as_array().unwrap() {
            let id = run["run_id"].as_str().unwrap().to_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn description(&self) -> Value {
        // No token: the description is open, like /healthz.
        let response = reqwest::get(self.url("/openapi.json")).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        response.json().await.unwrap()
    }
}

/// Values schemathesis draws from (half the time) for the parameters whose
/// valid values a schema cannot list: the ids of runs that exist, the
/// names of agents and intents that do. The other half are its own.
fn config(run_ids: &[String]) -> String {
    let list = |values: &[&str]| {
        values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ids: Vec<&str> = run_ids.iter().map(String::as_str).collect();
    format!(
        "[dictionaries.run_ids]\nvalues = [{}]\n\
         [dictionaries.agents]\nvalues = [{}]\n\
         [dictionaries.intents]\nvalues = [{}]\n\
         [parameters]\n\
         \"path.run_id\" = {{ dictionary = \"run_ids\", probability = 0.5 }}\n\
         \"body.agent\" = {{ dictionary = \"agents\", probability = 0.5 }}\n\
         \"body.intent\" = {{ dictionary = \"intents\", probability = 0.5 }}\n",
        list(&ids),
        list(&["echo", "sms", "email", "content"]),
        list(&["sms.send", "email.send"]),
    )
}

#[actix_rt::test]
async fn schemathesis_finds_the_server_as_described() {
    let schemathesis = schemathesis();
    let hub = Hub::start();
    let run_ids = hub.runs().await;
    let work = tempfile::tempdir().unwrap();
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&run_ids)).unwrap();
    let began = Instant::now();
    let output = Command::new(&schemathesis)
        .current_dir(work.path())
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(hub.url("/openapi.json"))
        .args(["--checks", "all"])
        // Excluded, each because it cannot hold for a correct server:
        .args([
            "--exclude-checks",
            // Valid data should be accepted (2xx): a `cursor` is valid only
            // if this server handed it out, which a schema cannot say (any
            // other string is 400), and `since` and `until` take several
            // forms that no pattern short of a parser lists.
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "25"])
        .args(["--seed", "15"])
        // One worker: with two, hypothesis parsed sources on two threads
        // at once and CPython 3.11's `ast.parse` failed inside schemathesis
        // ("AST constructor recursion depth mismatch"), a tool error that
        // says nothing about the server.
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--generation-database", "none"])
        // Never ends: checked by `the_event_feed_is_as_described`.
        .args(["--exclude-path", "/v1/events"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg("--no-color")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found the server and its description apart ({:?}):\n{stdout}\n{stderr}",
        began.elapsed()
    );
    // A `$ref` the description does not define makes schemathesis skip
    // that part of the schema with a warning only.
    assert!(
        !stdout.contains("Unresolvable reference"),
        "the description refers to a schema it does not define:\n{stdout}"
    );
    // It tested every operation (a run that tested nothing passes too) but
    // the feed and `/openapi.json`, which schemathesis leaves out as the
    // operation serving the description it reads.
    let description = hub.description().await;
    let operations: usize = description["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| !["/v1/events", "/openapi.json"].contains(&path.as_str()))
        .map(|(_, item)| item.as_object().unwrap().len())
        .sum();
    let tested = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(
        tested,
        Some(operations),
        "schemathesis did not test all {operations} operations:\n{stdout}"
    );
    eprintln!("{stdout}\n(schemathesis took {:?})", began.elapsed());
}

/// The feed as described: 200 `text/event-stream` whose events carry the
/// documented `Event` fields, and the documented JSON errors.
#[actix_rt::test]
async fn the_event_feed_is_as_described() {
    let hub = Hub::start();
    hub.runs().await;
    let description = hub.description().await;
    let feed = &description["paths"]["/v1/events"]["get"];
    let documented = |status: &str| feed["responses"][status].clone();
    assert!(
        documented("200")["content"]["text/event-stream"].is_object(),
        "{feed}"
    );
    let response = hub
        .client
        .get(hub.url("/v1/events?from=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut response = response;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("\n\n") {
        let chunk =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), response.chunk())
                .await
                .expect("the feed sent no event")
                .unwrap()
                .expect("the feed ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line in {text:?}"));
    let event: Value = serde_json::from_str(data).unwrap();
    let schema = &description["components"]["schemas"]["Event"];
    let mut fields: Vec<&String> = event.as_object().unwrap().keys().collect();
    let mut described: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    described.sort();
    assert_eq!(fields, described, "{event} against {schema}");
    for required in schema["required"].as_array().unwrap() {
        assert!(!event[required.as_str().unwrap()].is_null(), "{event}");
    }
    drop(response);
    for (path, header, status) in [
        ("/v1/events?from=x", None, 400),
        ("/v1/events?form=1", None, 400),
        ("/v1/events", Some("18446744073709551615"), 400),
    ] {
        assert!(documented(&status.to_string()).is_object(), "{status}");
        let mut request = hub.client.get(hub.url(path));
        if let Some(id) = header {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    let response = reqwest::get(hub.url("/v1/events")).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(documented("401").is_object());
}

/// The description is OpenAPI 3.1, and each operation in it is one the
/// server routes (not its 404 for unknown paths nor a 405), so a described
/// route cannot be missing; `the_description_lists_exactly_the_routes` in
/// `src/server/mod.rs` checks the other way, from the route table.
#[actix_rt::test]
async fn every_described_operation_is_routed() {
    let hub = Hub::start();
    let run_id = hub.runs().await.remove(0);
    let description = hub.description().await;
    assert_eq!(description["openapi"], "3.1.0", "{description:.300}");
    let paths = description["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{paths:?}");
    let mut tried = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{run_id}", &run_id)
            .replace("{key}", "no-such-step");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .unwrap_or_else(|_| panic!("{method} {path}: not a method"));
            let mut request = hub
                .client
                .request(method.clone(), hub.url(&concrete))
                .timeout(Duration::from_secs(30));
            if method == reqwest::Method::POST {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            // The feed's head is enough.
            let body: Value = if path == "/v1/events" {
                Value::Null
            } else {
                response.json().await.unwrap_or(Value::Null)
            };
            assert!(
                status != 405 && body["error"]["code"] != "not_found",
                "{method} {path} is described but not routed: {status} {body}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 13, "{tried}");
    // And a path it has with a method it does not is 405, saying which.
    let response = hub.client.delete(hub.url("/v1/runs")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    // The head limits, checked before any route, are on every operation.
    let long = format!("/v1/runs?agent={}", "a".repeat(9000));
    let response = hub.client.get(hub.url(&long)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 414);
    for item in paths.values() {
        for operation in item.as_object().unwrap().values() {
            for status in ["414", "431"] {
                assert!(operation["responses"][status].is_object(), "{operation}");
            }
        }
    }
}
