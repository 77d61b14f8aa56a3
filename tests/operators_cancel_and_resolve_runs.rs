//! Operators act on runs through `neonhub serve`: given the real binary with
//! live Twilio pointed at a local server that counts requests,
//! - when `neonhub runs cancel` names a run whose SMS is on the wire, then
//!   the run ends `failed` with kind `cancelled` and its reason, and the SMS
//!   is not sent again;
//! - when a send got a 500 (its run ended `in_doubt`) and `neonhub runs
//!   resolve --sent` settles it, then the run resumes and succeeds without
//!   sending again, and the decision (who, why) is in the step's events;
//! - bad requests get a clear 4xx and append nothing: an unknown run (404),
//!   an unknown step (404, naming the run's steps), a step not in doubt
//!   (409), a finished run (409 with its status), a bad body (400).

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::{ServeProcess, neonhub};
use neonhub_test_support::twilio::live_twilio;
use neonhub_test_support::wait_until_within;
use serde_json::{Value, json};

/// `neonhub runs ARGS... --server BASE`.
fn runs_cli(base: &str, args: &[&str]) -> Output {
    neonhub()
        .arg("runs")
        .args(args)
        .args(["--server", base])
        .env_remove("USER")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ended(client: &reqwest::Client, base: &str, run_id: &str) -> Value {
    let url = format!("{base}/v1/runs/{run_id}");
    wait_until_within("the run to end", Duration::from_secs(20), || {
        let (client, url) = (client.clone(), url.clone());
        async move { get(&client, url).await["status"] != "running" }
    })
    .await;
    get(client, url).await
}

#[actix_rt::test]
async fn operators_cancel_and_resolve_runs_over_the_cli_and_http() {
    let dir = tempfile::tempdir().unwrap();
    // Every answer takes 2 s; the second send is answered with a 500, and
    // the message list (the lookup of a step in doubt) is empty.
    let sends = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sends);
    let vendor = TestServer::start_slow(Duration::from_secs(2), move |request| {
        if request.method == "GET" {
            (200, json!({"messages": []}).to_string())
        } else if counter.fetch_add(1, Ordering::SeqCst) == 1 {
            (500, "{}".to_owned())
        } else {
            (201, json!({"sid": "SM1", "status": "queued"}).to_string())
        }
    });
    let posts = |vendor: &TestServer| vendor.count(|request| request.method == "POST");
    let client = reqwest::Client::new();
    let serve = ServeProcess::spawn_with(dir.path(), &[], live_twilio(&vendor.base_url));
    let base = serve.base.clone();

    // Cancel a run whose SMS is on the wire.
    let cancelled_id = "01932c4e-7c1a-7000-8000-0000000000c1";
    let body = json!({"intent": "sms.send", "run_id": cancelled_id,
                      "input": {"to": "+15550001111", "body": "cancel me"}});
    let (status, _) = post(&client, format!("{base}/v1/runs?wait=false"), body).await;
    assert_eq!(status, 202);
    wait_until_within("the SMS to reach Twilio", Duration::from_secs(10), || {
        let hits = posts(&vendor);
        async move { hits == 1 }
    })
    .await;
    let out = runs_cli(&base, &["cancel", cancelled_id, "--reason", "wrong number"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = ended(&client, &base, cancelled_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "cancelled", "{run}");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong number"),
        "{run}"
    );

    // A send answered with a 500 ends in doubt; the operator settles it.
    let doubt_id = "01932c4e-7c1a-7000-8000-0000000000d1";
    let body = json!({"intent": "sms.send", "run_id": doubt_id,
                      "input": {"to": "+15550001111", "body": "did it go?"}});
    let (status, run) = post(&client, format!("{base}/v1/runs?timeout_ms=20000"), body).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["error"]["kind"], "in_doubt", "{run}");
    assert_eq!(posts(&vendor), 2);

    // Bad requests, each answered with a clear 4xx, appending nothing.
    let head = get(&client, format!("{base}/readyz")).await["head"].clone();
    let resolve = |run: &str, step: &str| format!("{base}/v1/runs/{run}/steps/{step}/resolve");
    let sent = json!({"outcome": "sent", "decided_by": "dana"});
    let unknown_run = "01932c4e-7c1a-7000-8000-0000000000ee";
    let cases = [
        (resolve(unknown_run, "x"), sent.clone(), 404, "unknown_run"),
        (
            resolve(doubt_id, "twilio.send_sms%232"),
            sent.clone(),
            404,
            "unknown_step",
        ),
        (
            resolve(doubt_id, "twilio.send_sms%231"),
            json!({"decided_by": "dana"}),
            400,
            "invalid_request",
        ),
        (
            resolve(doubt_id, "twilio.send_sms%231"),
            json!({"outcome": "sent"}),
            400,
            "invalid_request",
        ),
        (
            resolve(doubt_id, "twilio.send_sms%231"),
            json!({"outcome": "maybe", "decided_by": "d"}),
            400,
            "invalid_request",
        ),
        (
            format!("{base}/v1/runs/{unknown_run}/cancel"),
            json!({}),
            404,
            "unknown_run",
        ),
        (
            format!("{base}/v1/runs/{cancelled_id}/cancel"),
            json!({}),
            409,
            "run_finished",
        ),
        (
            format!("{base}/v1/runs/{cancelled_id}/cancel"),
            json!({"why": "x"}),
            400,
            "invalid_request",
        ),
    ];
    for (url, body, status, code) in cases {
        let (got, answer) = post(&client, url.clone(), body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{url}: {answer}"
        );
    }
    let (_, answer) = post(&client, resolve(doubt_id, "nope"), sent.clone()).await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("twilio.send_sms#1"),
        "the run's steps are not named: {message}"
    );
    let (_, answer) = post(
        &client,
        format!("{base}/v1/runs/{cancelled_id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(answer["error"]["status"], "failed", "{answer}");
    let out = runs_cli(
        &base,
        &["resolve", doubt_id, "--step", "twilio.send_sms#1", "--sent"],
    );
    assert!(
        !out.status.success(),
        "resolved without a name for the audit"
    );
    assert!(text(&out).contains("--by"), "{}", text(&out));
    assert_eq!(
        get(&client, format!("{base}/readyz")).await["head"],
        head,
        "a refusal appended"
    );

    let out = runs_cli(
        &base,
        &[
            "resolve",
            doubt_id,
            "--step",
            "twilio.send_sms#1",
            "--sent",
            "--by",
            "dana",
            "--reason",
            "in the Twilio console",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run = ended(&client, &base, doubt_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(posts(&vendor), 2, "a step resolved as sent was sent again");
    let events = get(&client, format!("{base}/v1/runs/{doubt_id}")).await;
    let step_id = events["children"][0]["run_id"].as_str().unwrap().to_owned();
    let step = get(&client, format!("{base}/v1/runs/{step_id}/events")).await;
    let decision = step["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(decision["type"], "step.resolved.v1", "{decision}");
    assert_eq!(decision["data"]["decided_by"], "dana", "{decision}");
    assert_eq!(
        decision["data"]["reason"], "in the Twilio console",
        "{decision}"
    );

    // Settled: resolving again is a 409 with the step's status.
    let (status, answer) = post(&client, resolve(doubt_id, "twilio.send_sms%231"), sent).await;
    assert_eq!(status, 409, "{answer}");
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
