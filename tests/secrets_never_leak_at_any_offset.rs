//! Given `neonhub serve` with live Gmail, Slack and Twilio pointed at a
//! hostile local vendor that refuses every request and echoes it (its
//! `Authorization` header, then its body) into its error body after a
//! padding of a different length each time, so that the 300-character cut
//! of a quoted body falls at every offset of every credential, when runs
//! call each connector, then no run of 6 characters of any credential, in
//! plain or in the base64 of Twilio's Basic auth, is in the run's events,
//! in the files of the data directory (log and audit table), in any HTTP
//! answer about the runs, in `/metrics` or in the process's stderr. Gmail
//! refreshes its token there too: every other token request is refused
//! with the request (client secret, refresh token) echoed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::ServeProcess;
use serde_json::{Value, json};

const GMAIL_TOKEN: &str = "ya29.Qx7vLp2mZr9TkWn4HdBs6Yc";
const SLACK_TOKEN: &str = "xoxb-Kz48w1-Pq99u7-Jm3RfTq8VzKe5WpLs";
const TWILIO_SID: &str = "AC5f1c";
const TWILIO_TOKEN: &str = "9d7Fq2LmXw8RzT4kBv6NpJ3sHc1YgAe0";
const GMAIL_CLIENT_SECRET: &str = "GOCSPX-h4Tz9WqLm2VbRx7KcYp3";
const GMAIL_REFRESH_TOKEN: &str = "1//0gLk8Zr4TqWm9XbVn2HsJc6Yp";
/// The access token the token endpoint hands out.
const GMAIL_REFRESHED: &str = "ya29.Ks0v3WmQz8LtRx5NpBc2Hj7Ys";

// Every run of 6 characters of each credential (but the `%2F%2F` of the
// encoded refresh token) holds a letter past `f`: none can be a piece of a
// UUID, a number or a time in the output by chance.

/// The longest run of a credential's characters allowed anywhere.
const MAX_PIECE: usize = 5;

/// Paddings before the echo: with the echo's own prefix
/// (`Authorization: Bearer `), the cut at 300 lands before, inside and
/// after each credential.
const PADDINGS: std::ops::Range<usize> = 236..300;

/// The base64 characters of `encoded` (of `prefix` bytes, then `secret_len`
/// bytes) that encode the secret's bytes alone.
fn secret_chars(encoded: &str, prefix: usize, secret_len: usize) -> String {
    let first = (8 * prefix).div_ceil(6);
    let end = (8 * (prefix + secret_len)) / 6;
    encoded[first..end].to_owned()
}

/// Every run of `MAX_PIECE + 1` characters of a credential form in `text`.
fn pieces_in(text: &str, forms: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for form in forms {
        let chars: Vec<char> = form.chars().collect();
        for window in chars.windows(MAX_PIECE + 1) {
            let piece: String = window.iter().collect();
            if text.contains(&piece) {
                found.push(piece);
            }
        }
    }
    found
}

/// Every file under `dir`, as text (lossy).
fn files_text(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_text(&path, into);
        } else if let Ok(bytes) = std::fs::read(&path) {
            into.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}

async fn get(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

#[actix_rt::test]
async fn no_piece_of_a_credential_leaks_wherever_the_cut_falls() {
    let data = tempfile::tempdir().unwrap();
    let stderr_path = data.path().join("serve.stderr");
    let nth = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&nth);
    let token_requests = AtomicUsize::new(0);
    let vendor = TestServer::start(move |req| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        if req.path == "/token"
            && token_requests
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(2)
        {
            let token = json!({"access_token": GMAIL_REFRESHED, "expires_in": 3599,
                               "token_type": "Bearer"});
            return (200, token.to_string());
        }
        let pad = PADDINGS.start + i % PADDINGS.len();
        let echo = format!(
            "{}Authorization: {} {}",
            "x".repeat(pad),
            req.authorization.clone().unwrap_or_default(),
            req.body
        );
        (401, echo)
    });
    let base = vendor.base_url.clone();
    let stderr = File::create(&stderr_path).unwrap();
    let serve = ServeProcess::spawn_with(data.path(), &[], |command| {
        command
            .stderr(stderr)
            .env_remove("NEONHUB_CONNECTORS")
            // Every log line there is, the HTTP client's included.
            .env("NEONHUB_LOG", "trace")
            .env("NEONHUB_GMAIL_TOKEN", GMAIL_TOKEN)
            .env("NEONHUB_GMAIL_BASE_URL", &base)
            .env(
                "NEONHUB_GMAIL_CLIENT_ID",
                "client-1.apps.googleusercontent.com",
            )
            .env("NEONHUB_GMAIL_CLIENT_SECRET", GMAIL_CLIENT_SECRET)
            .env("NEONHUB_GMAIL_REFRESH_TOKEN", GMAIL_REFRESH_TOKEN)
            .env("NEONHUB_GMAIL_TOKEN_URL", format!("{base}/token"))
            .env("NEONHUB_SLACK_TOKEN", SLACK_TOKEN)
            .env("NEONHUB_SLACK_BASE_URL", &base)
            .env("NEONHUB_TWILIO_ACCOUNT_SID", TWILIO_SID)
            .env("NEONHUB_TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .env("NEONHUB_TWILIO_FROM", "+15550000000")
            .env("NEONHUB_TWILIO_BASE_URL", &base)
            .env("NEONHUB_TWILIO_LOOKUP_BASE_URL", &base);
    });
    let client = reqwest::Client::new();

    let mut answers = String::new();
    let mut run_ids = Vec::new();
    let runs = [
        json!({"intent": "sms.send", "input": {"to": "+15550001111", "body": "hi"}}),
        json!({"intent": "slack.notify", "input": {"channel": "C1", "text": "hi"}}),
        json!({"intent": "email.send",
               "input": {"to": "a@example.com", "subject": "s", "body": "b"}}),
    ];
    for _ in PADDINGS {
        for run in &runs {
            let answer: Value = client
                .post(format!("{}/v1/runs", serve.base))
                .json(run)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["status"], "failed", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("401"), "{answer}");
            run_ids.push(answer["run_id"].as_str().unwrap().to_owned());
            answers.push_str(&answer.to_string());
        }
    }
    let sms = vendor.count(|s| s.path.ends_with("/Messages.json"));
    assert_eq!(sms, PADDINGS.len(), "one request a Twilio run");

    for run_id in &run_ids {
        let tree: Value = serde_json::from_str(
            &get(&client, format!("{}/v1/runs/{run_id}/tree", serve.base)).await,
        )
        .unwrap();
        answers.push_str(&tree.to_string());
        for run in tree["runs"].as_array().unwrap() {
            let id = run["run_id"].as_str().unwrap();
            let path = format!("{}/v1/runs/{id}", serve.base);
            answers.push_str(&get(&client, path.clone()).await);
            answers.push_str(&get(&client, format!("{path}/events")).await);
        }
    }
    let listed = get(&client, format!("{}/v1/runs?limit=1000", serve.base)).await;
    assert!(listed.contains("HTTP 401"), "{listed}");
    answers.push_str(&listed);
    let metrics = get(&client, format!("{}/metrics", serve.base)).await;
    let (code, stdout) = serve.terminate();
    assert_eq!(code, Some(0));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let mut files = String::new();
    files_text(data.path(), &mut files);
    assert!(
        files.contains("HTTP 401"),
        "the failures are in the log and the table"
    );

    let basic = STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
    let forms = [
        GMAIL_TOKEN.to_owned(),
        GMAIL_REFRESHED.to_owned(),
        GMAIL_CLIENT_SECRET.to_owned(),
        GMAIL_REFRESH_TOKEN.to_owned(),
        // As the token request's form body carries it.
        GMAIL_REFRESH_TOKEN.replace('/', "%2F"),
        SLACK_TOKEN.to_owned(),
        TWILIO_TOKEN.to_owned(),
        secret_chars(&basic, TWILIO_SID.len() + 1, TWILIO_TOKEN.len()),
    ];
    for (place, text) in [
        ("an HTTP answer", &answers),
        ("/metrics", &metrics),
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("the data directory (log, table)", &files),
    ] {
        let leaked = pieces_in(text, &forms);
        assert!(leaked.is_empty(), "{leaked:?} leaked into {place}");
    }
    let refreshes = vendor.count(|s| s.path == "/token");
    assert_eq!(refreshes, PADDINGS.len(), "one token refresh a Gmail run");
    assert!(
        stderr.contains("gmail access token refreshed"),
        "the log lines were captured, a refresh among them"
    );
    vendor.stop().await;
}
