//! The configuration file's `[connectors.*]` rate limits take effect, and a
//! flag given overrides them. Given `serve --config` with Twilio limited to
//! 5 sends a second per number, when 15 SMS go to one number at once, then
//! they all succeed and the sends waited for their turn (as
//! `neonhub_rate_limit_wait_seconds` shows); with `--twilio-rate-per-number
//! off` on top of the same file, nothing waits.

use neonhub_test_support::service::ServeProcess;
use serde_json::{Value, json};

async fn send_15(base: &str) {
    let client = reqwest::Client::new();
    let sends = (0..15).map(|_| {
        let client = client.clone();
        let url = format!("{base}/v1/runs");
        async move {
            let body = json!({"agent": "sms", "input": {"to": "+15550001111", "body": "hi"}});
            let run: Value = client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(run["status"], "succeeded", "{run}");
        }
    });
    futures_util::future::join_all(sends).await;
}

async fn waited(base: &str) -> f64 {
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = "neonhub_rate_limit_wait_seconds_sum{connector=\"twilio\"}";
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[actix_rt::test]
async fn the_file_s_limit_makes_sends_wait_and_a_flag_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        "[connectors.twilio]\nrate = \"off\"\nrate_per_key = \"5/s\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let serve = ServeProcess::spawn(&dir.path().join("a"), &["--config", config]);
    send_15(&serve.base).await;
    // 5 at once, then one every 200 ms: 0.2 + 0.4 + ... + 2.0 = 11 s in all.
    let limited = waited(&serve.base).await;
    assert!(
        limited > 5.0,
        "the file's limit did not hold: {limited} s waited"
    );
    drop(serve);

    let serve = ServeProcess::spawn(
        &dir.path().join("b"),
        &["--config", config, "--twilio-rate-per-number", "off"],
    );
    send_15(&serve.base).await;
    let unlimited = waited(&serve.base).await;
    assert!(
        unlimited < 0.5,
        "the flag did not override the file: {unlimited} s waited"
    );
}
