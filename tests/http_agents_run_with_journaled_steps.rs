//! Agents served over HTTP, declared in the configuration file, are run and
//! recorded as built-in ones are, and their steps keep the durable-execution
//! guarantees. Given `neonhub serve --config` with an agent at a local HTTP
//! server (the fake below, scripted per attempt) and live Twilio at a local
//! fake that counts every SMS:
//! - a 200 answer is the run's output, its step a child run in the tree;
//! - a 5xx is retried, and the step the first attempt finished is replayed
//!   from the journal, not sent again (Twilio gets one SMS);
//! - a 4xx fails the run at once (no retry), with the agent's message;
//! - no answer within the timeout fails it `timeout`;
//! - a 200 that is not JSON fails it `agent`, naming the URL and the fault;
//! - a step call once the attempt is over, with a wrong token, or to an
//!   unknown connector is refused (409, 401, 404) and appends nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use neonhub_test_support::service::ServeProcess;
use neonhub_test_support::twilio::{Reply, fake_twilio, live_twilio};
use serde_json::{Value, json};

/// What the fake agent does on an attempt.
#[derive(Clone, Copy)]
enum Script {
    /// Sends an SMS as step `notify`, then answers 503 on attempt 1 and 200
    /// after.
    StepThen503Then200,
    /// Answers 422 with an error message.
    Refuse,
    /// Never answers in time.
    Hang,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Answers 200 after 200 ms.
    Slow,
}

struct Agent {
    script: Script,
    attempts: AtomicU32,
    /// Attempts being answered now, and the most seen at once.
    running: AtomicU32,
    most: AtomicU32,
    /// The last attempt's request, to call its steps afterwards.
    last: std::sync::Mutex<Option<Value>>,
}

async fn step(request: &Value, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut call = reqwest::Client::new()
        .post(request["steps_url"].as_str().unwrap())
        .json(&body);
    if let Some(token) = token {
        call = call.bearer_auth(token);
    }
    let answer = call.send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn attempt(agent: web::Data<Agent>, request: web::Json<Value>) -> HttpResponse {
    let request = request.into_inner();
    agent.attempts.fetch_add(1, Ordering::SeqCst);
    *agent.last.lock().unwrap() = Some(request.clone());
    match agent.script {
        Script::StepThen503Then200 => {
            let token = request["steps_token"].as_str().unwrap().to_owned();
            let (status, sent) = step(
                &request,
                json!({"step": "notify", "connector": "twilio", "operation": "send_sms",
                       "attempt": request["attempt"],
                       "input": {"to": "+15550001111", "body": "from an HTTP agent"}}),
                Some(&token),
            )
            .await;
            assert_eq!(status, 200, "{sent}");
            if request["attempt"] == 1 {
                HttpResponse::ServiceUnavailable().json(json!({"error": {"message": "busy"}}))
            } else {
                HttpResponse::Ok()
                    .json(json!({"sms": sent["output"], "attempt": request["attempt"]}))
            }
        }
        Script::Refuse => HttpResponse::UnprocessableEntity()
            .json(json!({"error": {"message": "the text is in a language I do not read"}})),
        Script::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().json(json!({}))
        }
        Script::Garbage => HttpResponse::Ok()
            .content_type("application/json")
            .body("<html>oops</html>"),
        Script::Slow => {
            let now = agent.running.fetch_add(1, Ordering::SeqCst) + 1;
            agent.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            agent.running.fetch_sub(1, Ordering::SeqCst);
            HttpResponse::Ok().json(json!({"done": true}))
        }
    }
}

/// Starts the fake agent; returns its URL and state.
fn start_agent(script: Script) -> (String, web::Data<Agent>) {
    let agent = web::Data::new(Agent {
        script,
        attempts: AtomicU32::new(0),
        running: AtomicU32::new(0),
        most: AtomicU32::new(0),
        last: std::sync::Mutex::new(None),
    });
    let shared = agent.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/run", web::post().to(attempt))
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_rt::spawn(server.run());
    (format!("http://{addr}/run"), agent)
}

fn config(dir: &std::path::Path, url: &str, timeout: &str, retries: u32) -> String {
    config_with(dir, url, timeout, retries, "")
}

fn config_with(
    dir: &std::path::Path,
    url: &str,
    timeout: &str,
    retries: u32,
    more: &str,
) -> String {
    let path = dir.join("neonhub.toml");
    std::fs::write(
        &path,
        format!(
            "[[agents]]\nname = \"remote\"\nintents = [\"remote.do\"]\nurl = \"{url}\"\n\
             timeout = \"{timeout}\"\nretries = {retries}\nbackoff = \"50ms\"\n{more}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

async fn submit(base: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/v1/runs"))
        .json(&json!({"agent": "remote", "input": {"text": "hello"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The log's head, from `GET /readyz`.
async fn head(base: &str) -> u64 {
    let (_, ready) = get(format!("{base}/readyz")).await;
    ready["head"]
        .as_u64()
        .unwrap_or_else(|| panic!("no head in {ready}"))
}

async fn get(url: String) -> (u16, Value) {
    let answer = reqwest::get(url).await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[actix_rt::test]
async fn a_5xx_is_retried_and_the_finished_step_replays_instead_of_sending_again() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = fake_twilio(|_| Reply::Accept(Duration::ZERO));
    let (url, agent) = start_agent(Script::StepThen503Then200);
    let config = config(dir.path(), &url, "10s", 2);
    let serve = ServeProcess::spawn_with(
        &dir.path().join("data"),
        &["--config", &config],
        live_twilio(&vendor.base_url),
    );
    let run = submit(&serve.base).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempts"], 2, "{run}");
    assert_eq!(run["output"]["attempt"], 2, "{run}");
    assert_eq!(agent.attempts.load(Ordering::SeqCst), 2);
    let sends = vendor.count(|s| s.method == "POST");
    assert_eq!(sends, 1, "the step finished by attempt 1 was sent again");
    // The second attempt got the first one's recorded output.
    assert!(run["output"]["sms"]["sid"].is_string(), "{run}");

    // The step is a child run of the agent run, in its tree and the table.
    let run_id = run["run_id"].as_str().unwrap();
    let (status, tree) = get(format!("{}/v1/runs/{run_id}/tree", serve.base)).await;
    assert_eq!(status, 200, "{tree}");
    let steps: Vec<&Value> = tree["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["parent_run_id"] == run_id)
        .collect();
    assert_eq!(steps.len(), 1, "one step, recorded once: {tree}");
    assert_eq!(
        (
            &steps[0]["kind"],
            &steps[0]["target"],
            &steps[0]["operation"],
            &steps[0]["status"]
        ),
        (
            &json!("connector"),
            &json!("twilio"),
            &json!("send_sms"),
            &json!("succeeded")
        ),
        "{tree}"
    );
    assert_eq!(steps[0]["output"], run["output"]["sms"], "{tree}");

    // After the run: the last attempt's token calls nothing, appends nothing.
    let before = head(&serve.base).await;
    let last = agent.last.lock().unwrap().clone().unwrap();
    let token = last["steps_token"].as_str().unwrap().to_owned();
    let call = json!({"step": "late", "connector": "twilio", "operation": "send_sms",
                      "input": {"to": "+15550001111", "body": "too late"}});
    let (status, refused) = step(&last, call.clone(), Some(&token)).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "run_not_running", "{refused}");
    assert_eq!(
        head(&serve.base).await,
        before,
        "a refused step call appended"
    );
    assert_eq!(vendor.count(|s| s.method == "POST"), 1);
    drop(serve);
    vendor.stop().await;
}

#[actix_rt::test]
async fn step_calls_with_a_wrong_token_an_old_attempt_or_an_unknown_connector_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (url, agent) = start_agent(Script::Hang);
    let config = config(dir.path(), &url, "5s", 0);
    let serve = ServeProcess::spawn(&dir.path().join("data"), &["--config", &config]);
    let base = serve.base.clone();
    let running = actix_rt::spawn(async move { submit(&base).await });
    let request = loop {
        if let Some(request) = agent.last.lock().unwrap().clone() {
            break request;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let token = request["steps_token"].as_str().unwrap().to_owned();
    let before = head(&serve.base).await;
    let call = |connector: &str, attempt: u32| {
        json!({"step": "s", "connector": connector, "operation": "send", "attempt": attempt,
               "input": {"to": "a@example.com", "subject": "s", "body": "b"}})
    };
    let (status, body) = step(
        &request,
        call("gmail", 1),
        Some(&uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (status, body) = step(&request, call("gmail", 1), Some("not-a-token")).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = step(&request, call("gmail", 2), Some(&token)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("attempt_over")),
        "{body}"
    );
    let (status, body) = step(&request, call("fax", 1), Some(&token)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_connector")),
        "{body}"
    );
    assert_eq!(
        head(&serve.base).await,
        before,
        "a refused step call appended"
    );
    // The right token works while the attempt runs.
    let (status, body) = step(&request, call("gmail", 1), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["output"]["id"].is_string(), "{body}");
    let run = running.await.unwrap();
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "timeout", "{run}");
}

#[actix_rt::test]
async fn a_4xx_a_timeout_and_garbage_fail_the_run_as_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            Script::Refuse,
            "agent",
            "the text is in a language I do not read",
            1,
        ),
        (Script::Hang, "timeout", "did not finish within", 2),
        (Script::Garbage, "agent", "not JSON", 1),
    ];
    for (i, (script, kind, says, attempts)) in cases.into_iter().enumerate() {
        let (url, agent) = start_agent(script);
        let case = dir.path().join(i.to_string());
        std::fs::create_dir_all(&case).unwrap();
        // Two attempts allowed: only the timeout may use the second.
        let config = config(&case, &url, "1s", 1);
        let serve = ServeProcess::spawn(&case.join("data"), &["--config", &config]);
        let run = submit(&serve.base).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(run["error"]["kind"], kind, "{run}");
        let message = run["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert_eq!(run["attempts"], attempts, "{run}");
        assert_eq!(agent.attempts.load(Ordering::SeqCst), attempts);
        if kind == "agent" {
            assert!(
                message.contains(&url),
                "the message does not name the URL: {message}"
            );
        }
        drop(serve);
    }
}

#[actix_rt::test]
async fn max_concurrent_bounds_the_attempts_running_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, agent) = start_agent(Script::Slow);
    // Each attempt takes 200 ms against a 1 s timeout: four in turn take
    // 800 ms, and none times out, since the timeout starts at its turn.
    let config = config_with(dir.path(), &url, "1s", 0, "max_concurrent = 1\n");
    let serve = ServeProcess::spawn(&dir.path().join("data"), &["--config", &config]);
    let runs = (0..4).map(|_| {
        let base = serve.base.clone();
        actix_rt::spawn(async move { submit(&base).await })
    });
    for run in runs.collect::<Vec<_>>() {
        let run = run.await.unwrap();
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    assert_eq!(agent.attempts.load(Ordering::SeqCst), 4);
    assert_eq!(
        agent.most.load(Ordering::SeqCst),
        1,
        "two attempts ran at once under max_concurrent = 1"
    );
}

#[test]
fn config_check_names_the_line_and_key_of_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "http://127.0.0.1:9/run", "30s", 3);
    let out = neonhub_test_support::service::run_cli(dir.path(), &["config", "check", &good]);
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[agents]]\nname = \"remote\"\nurl = \"http://h/\"\ntimout = \"1s\"\n",
    )
    .unwrap();
    let out = neonhub_test_support::service::run_cli(
        dir.path(),
        &["config", "check", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:4:1: unknown field `timout`"),
        "{stderr}"
    );
    // serve refuses it too, before listening.
    let out = neonhub_test_support::service::neonhub()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `timout`"));
}
