//! The configuration file's `[store]` and `[connectors.*]` settings take
//! effect in `neonhub serve`, and flags and variables override them:
//! - `[store] data_dir`, `log_dir` and `projection` put the log and the
//!   AgentRun table where they say; `--data-dir` wins over `data_dir`;
//! - Twilio made live by `mode`, pointed at a local vendor by `base_url`,
//!   with its auth token read from a file (`{ file = ... }`): the vendor
//!   sees the Basic auth of that token; `NEONHUB_TWILIO_AUTH_TOKEN` wins;
//! - Slack's `retries` and `breaker`: a vendor answering 503 is called
//!   `retries + 1` times (not the default 3), then the breaker is open and the next call never
//!   reaches it;
//! - Gmail's `timeout`, its token from `{ env = ... }`: a vendor that
//!   never answers fails the send after that timeout;
//! - a connector's `mode` wins over its credentials and gives way to
//!   `NEONHUB_<NAME>_MODE`;
//! - a credential whose variable is unset stops start-up, naming the key;
//!   `config show` prints every credential masked.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use neonhub_test_support::http::{Gate, Reply, TestServer};
use neonhub_test_support::service::{ServeProcess, neonhub, run_body, stdout};
use serde_json::{Value, json};

const TWILIO_TOKEN: &str = "tw-token-from-a-file-9Zq";
const TWILIO_ENV_TOKEN: &str = "tw-token-from-the-env-4Kx";
const SLACK_TOKEN: &str = "xoxb-from-a-file-7Lm";
const GMAIL_TOKEN: &str = "ya29.from-the-env-3Pw";

async fn post_run(base: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/v1/runs"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn tree(base: &str, run: &Value) -> String {
    let id = run["run_id"].as_str().unwrap_or_else(|| panic!("{run}"));
    reqwest::get(format!("{base}/v1/runs/{id}/tree"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `serve` with no flag for the store and live connectors allowed (the
/// test support forces them mock otherwise), in `dir`.
fn serve(dir: &Path, extra: &[&str], configure: impl FnOnce(&mut Command)) -> ServeProcess {
    ServeProcess::spawn_without_data_dir(extra, |command| {
        command
            .current_dir(dir)
            .env_remove("NEONHUB_CONNECTORS")
            .env_remove("NEONHUB_TWILIO_AUTH_TOKEN")
            .env_remove("NEONHUB_GMAIL_TOKEN")
            .env_remove("NEONHUB_SLACK_TOKEN");
        configure(command);
    })
}

#[actix_rt::test]
async fn the_store_section_places_the_log_and_the_table_and_data_dir_gives_way_to_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"embedded\"\ndata_dir = \"from-file\"\n\
         log_dir = \"elsewhere/log\"\nprojection = \"tables/runs.sqlite\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let server = serve(dir.path(), &["--config", config], |_| {});
    let run = post_run(&server.base, run_body("echo", json!({"n": 1}))).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
    let log = dir.path().join("elsewhere/log");
    assert!(
        std::fs::read_dir(&log).is_ok_and(|mut files| files.next().is_some()),
        "no log in {}",
        log.display()
    );
    assert!(dir.path().join("tables/runs.sqlite").is_file());
    assert!(!dir.path().join("data").exists(), "the default was used");
    assert!(!dir.path().join("from-file/log").exists());
    // The table is where the file says: the run is in it.
    assert_eq!(rows(&dir.path().join("tables/runs.sqlite")), 1);

    // Without log_dir and projection, both go under data_dir; the flag
    // wins over it.
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[store]\ndata_dir = \"from-file\"\n").unwrap();
    let plain = plain.to_str().unwrap();
    let server = serve(dir.path(), &["--config", plain], |_| {});
    server.terminate();
    assert!(dir.path().join("from-file/log").is_dir());
    assert!(dir.path().join("from-file/agent_runs.sqlite").is_file());
    let flagged = dir.path().join("from-flag");
    let server = serve(dir.path(), &["--config", plain], |command| {
        command.env("NEONHUB_DATA_DIR", &flagged);
    });
    server.terminate();
    assert!(flagged.join("log").is_dir(), "the flag did not win");
}

/// The number of rows in the AgentRun table at `path`.
fn rows(path: &Path) -> i64 {
    let table = rusqlite::Connection::open(path).unwrap();
    table
        .query_row("SELECT COUNT(*) FROM agent_runs", [], |row| row.get(0))
        .unwrap()
}

#[actix_rt::test]
async fn connector_settings_and_credentials_from_the_file_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let never = Gate::new();
    let held = never.clone();
    let vendor = TestServer::start_replying(move |request| {
        if request.path.contains("/Messages") && request.method == "POST" {
            Reply::new(201, json!({"sid": "SM1", "status": "queued"}).to_string())
        } else if request.path.contains("chat.postMessage") {
            Reply::new(503, "{}")
        } else if request.path.contains("/gmail/") && request.method == "POST" {
            // Never answers: the send times out.
            Reply::new(200, json!({"id": "m1", "threadId": "t1"}).to_string()).until(&held)
        } else {
            Reply::new(200, json!({"messages": []}).to_string())
        }
    });
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("twilio"), format!("{TWILIO_TOKEN}\n")).unwrap();
    std::fs::write(secrets.join("slack"), SLACK_TOKEN).unwrap();
    let base = &vendor.base_url;
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        format!(
            "[[agents]]\nname = \"slack\"\nretries = 0\n\n\
             [[agents]]\nname = \"email\"\nretries = 0\n\n\
             [connectors.twilio]\nmode = \"live\"\nbase_url = \"{base}/twilio\"\n\
             account_sid = \"AC123\"\nfrom = \"+15550001111\"\n\
             auth_token = {{ file = \"secrets/twilio\" }}\n\n\
             [connectors.slack]\nbase_url = \"{base}/slack\"\ntoken = {{ file = \"secrets/slack\" }}\n\
             retries = 3\nbackoff = \"1ms\"\n\
             breaker = {{ failure_threshold = 4, open_for = \"1h\" }}\n\n\
             [connectors.gmail]\nbase_url = \"{base}/gmail\"\n\
             token = {{ env = \"TEST_GMAIL_TOKEN\" }}\ntimeout = \"300ms\"\nretries = 0\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let with_gmail_token = |command: &mut Command| {
        command.env("TEST_GMAIL_TOKEN", GMAIL_TOKEN);
    };

    let server = serve(dir.path(), &["--config", config], with_gmail_token);
    let modes = modes(&server.base).await;
    // The three the file configures (the model is not configured: a mock).
    let live = |name: &str| modes.contains(&(name.to_owned(), "live".to_owned()));
    assert!(
        live("gmail") && live("slack") && live("twilio"),
        "{modes:?}"
    );

    // Twilio: live at the file's URL, with the token read from the file.
    let sms = post_run(
        &server.base,
        run_body("sms", json!({"to": "+15557654321", "body": "hi"})),
    )
    .await;
    assert_eq!(sms["status"], "succeeded", "{sms}");
    let basic = |token: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("AC123:{token}"))
        )
    };
    let sent = vendor.count(|r| {
        r.path.starts_with("/twilio/Accounts/AC123/Messages")
            && r.authorization.as_deref() == Some(basic(TWILIO_TOKEN).as_str())
    });
    assert_eq!(sent, 1, "{:#?}", vendor.seen());

    // Slack: 1 + 3 retries reach the vendor (the default is 1 + 2), and
    // open the breaker at 4 (the default is 5).
    let posts = |vendor: &TestServer| vendor.count(|r| r.path.contains("chat.postMessage"));
    let note = || run_body("slack", json!({"channel": "C1", "text": "hi"}));
    let failed = post_run(&server.base, note()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(posts(&vendor), 4, "retries = 3: four calls");
    let fast = post_run(&server.base, note()).await;
    assert_eq!(fast["error"]["kind"], "circuit_open", "{fast}");
    assert_eq!(posts(&vendor), 4, "the open breaker let a call through");

    // Gmail: its token from the environment, cut off after 300 ms.
    let email = post_run(
        &server.base,
        run_body(
            "email",
            json!({"to": "a@example.com", "subject": "S", "body": "B"}),
        ),
    )
    .await;
    assert_eq!(email["status"], "failed", "{email}");
    let email_tree = tree(&server.base, &email).await;
    assert!(
        email_tree.contains("no answer within 300ms"),
        "{email_tree}"
    );
    let bearer = format!("Bearer {GMAIL_TOKEN}");
    assert!(
        vendor.count(|r| r.path.starts_with("/gmail/")
            && r.authorization.as_deref() == Some(bearer.as_str()))
            >= 1,
        "{:#?}",
        vendor.seen()
    );
    server.terminate();

    // A variable given wins over the file's credential.
    let server = serve(dir.path(), &["--config", config], |command| {
        with_gmail_token(command);
        command.env("NEONHUB_TWILIO_AUTH_TOKEN", TWILIO_ENV_TOKEN);
    });
    let sms = post_run(
        &server.base,
        run_body("sms", json!({"to": "+15557654321", "body": "again"})),
    )
    .await;
    assert_eq!(sms["status"], "succeeded", "{sms}");
    let with_env =
        vendor.count(|r| r.authorization.as_deref() == Some(basic(TWILIO_ENV_TOKEN).as_str()));
    assert_eq!(with_env, 1, "{:#?}", vendor.seen());
    server.terminate();

    // An unset variable stops start-up, naming the file, line and key.
    let refused = neonhub()
        .current_dir(dir.path())
        .env_remove("TEST_GMAIL_TOKEN")
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("neonhub.toml:25:9: ")
            && stderr.contains(
                "connectors.gmail.token: the environment variable TEST_GMAIL_TOKEN is not set"
            ),
        "{stderr}"
    );

    // `config show` masks every credential; `config check` takes the file.
    let shown = neonhub()
        .current_dir(dir.path())
        .env("TEST_GMAIL_TOKEN", GMAIL_TOKEN)
        .args(["config", "show", "--config", config])
        .output()
        .unwrap();
    let text = stdout(&shown);
    assert!(shown.status.success(), "{text}");
    for secret in [TWILIO_TOKEN, SLACK_TOKEN, GMAIL_TOKEN] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(
        text.contains("auth_token = { file = \"secrets/twilio\" }  # ***"),
        "{text}"
    );
    assert!(
        text.contains("breaker = { failure_threshold = 4, open_for = \"3600000ms\" }"),
        "{text}"
    );
    vendor.stop().await;
}

#[test]
fn config_check_names_the_line_of_a_literal_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[connectors.slack]\nmode = \"live\"\ntoken = \"xoxb-written-in-the-file\"\n",
    )
    .unwrap();
    let output = neonhub()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:3:9: connectors.slack.token: a secret is never written")
            && stderr.contains("{ env = \"VAR\" }"),
        "{stderr}"
    );
    assert!(!stderr.contains("xoxb-written"), "{stderr}");
}

/// The connectors' modes as `GET /v1/agents` lists them: (name, mode).
async fn modes(base: &str) -> Vec<(String, String)> {
    let agents: Value = reqwest::get(format!("{base}/v1/agents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    agents["connectors"]
        .as_array()
        .unwrap_or_else(|| panic!("{agents}"))
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&c["name"]), text(&c["mode"]))
        })
        .collect()
}

#[actix_rt::test]
async fn a_connector_s_mode_from_the_file_wins_over_its_credentials_and_gives_way_to_its_variable()
{
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slack-token"), SLACK_TOKEN).unwrap();
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        "[connectors.slack]\nmode = \"mock\"\ntoken = { file = \"slack-token\" }\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let slack = |modes: Vec<(String, String)>| {
        modes
            .into_iter()
            .find(|(name, _)| name == "slack")
            .map(|(_, mode)| mode)
    };

    let server = serve(dir.path(), &["--config", config], |_| {});
    assert_eq!(
        slack(modes(&server.base).await).as_deref(),
        Some("mock"),
        "a token alone makes it live"
    );
    server.terminate();
    let server = serve(dir.path(), &["--config", config], |command| {
        command.env("NEONHUB_SLACK_MODE", "live");
    });
    assert_eq!(slack(modes(&server.base).await).as_deref(), Some("live"));
    server.terminate();
}
