//! Rate limits pace runs instead of failing them: `neonhub demo` at the
//! default limits fails no run `rate_limited` (it failed most SMS runs when
//! the limit refused calls at once); a service whose Twilio is limited to
//! 10 sends a second per sending number runs 30 SMS at once and every one
//! succeeds, their waiting shown in `/metrics`; `GET /v1/agents` shows each
//! connector's restarts.

use futures_util::future::join_all;
use neonhub::ServiceOptions;
use neonhub_actors::{ConnectorLimits, Limit, RateLimitsConfig};
use neonhub_test_support::service::{InProcess, run_cli, stdout};
use serde_json::{Value, json};

#[test]
fn the_demo_fails_no_run_rate_limited_at_the_default_limits() {
    let data = tempfile::tempdir().unwrap();
    let demo = stdout(&run_cli(data.path(), &["demo", "--runs", "3000"]));
    assert!(demo.contains("3000 runs"), "{demo}");
    // It says how long calls waited for rate limits.
    assert!(
        demo.contains("rate limits: none of ") || demo.contains("waited for their turn"),
        "{demo}"
    );
    let listed = stdout(&run_cli(
        data.path(),
        &[
            "runs",
            "list",
            "--error-kind",
            "rate_limited",
            "--all",
            "--format",
            "jsonl",
        ],
    ));
    assert_eq!(listed.trim(), "", "runs failed rate_limited:\n{listed}");
}

#[actix_rt::test]
async fn sends_over_a_number_s_limit_wait_and_succeed() {
    let per_number: Limit = "10/s".parse().unwrap();
    let hub = InProcess::start_with(
        |o| ServiceOptions {
            rate_limits: RateLimitsConfig {
                twilio: ConnectorLimits {
                    connector: Limit::Off,
                    per_key: per_number,
                },
                ..RateLimitsConfig::default()
            },
            ..o
        },
        |c| c,
    )
    .await;

    let hub_ref = &hub;
    let runs = (0..30).map(|n| {
        let body =
            json!({"agent": "sms", "input": {"to": format!("+1555000{n:04}"), "body": "hi"}});
        async move { hub_ref.post_run(&body).await }
    });
    let answers = join_all(runs).await;

    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["status"], "succeeded", "{answer}");
    }
    let metrics = hub.metrics().await;
    let count = sample(
        &metrics,
        "neonhub_rate_limit_wait_seconds_count{connector=\"twilio\"}",
    );
    assert_eq!(count, 30.0, "{metrics}");
    let waited = sample(
        &metrics,
        "neonhub_rate_limit_wait_seconds_sum{connector=\"twilio\"}",
    );
    // 10 at once, then one every 100 ms: the last waits about 2 s.
    assert!(
        waited > 5.0,
        "the sends waited {waited} s in all\n{metrics}"
    );
    assert!(
        metrics.contains("neonhub_rate_limit_waiting{connector=\"twilio\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("neonhub_connector_restarts_total{connector=\"twilio\"} 0"),
        "{metrics}"
    );

    let (status, catalog) = hub.get("/v1/agents").await;
    assert_eq!(status, 200);
    let connectors = catalog["connectors"].as_array().unwrap();
    assert_eq!(connectors.len(), 4, "{catalog}");
    for connector in connectors {
        assert_eq!(connector["restarts"], json!(0), "{catalog}");
    }
    let agents: &Vec<Value> = catalog["agents"].as_array().unwrap();
    assert!(
        agents.iter().all(|a| a["restarts"] == json!(0)),
        "{catalog}"
    );
    hub.stop().await;
}

/// The value of the sample `series` (name and labels as rendered).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}
