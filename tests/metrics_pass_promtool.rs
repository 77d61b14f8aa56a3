//! `/metrics` is valid Prometheus text by Prometheus's own checker:
//! `promtool check metrics` (parse and lint: every family has `# HELP` and
//! `# TYPE`, histogram buckets in increasing `le`, counters named `_total`)
//! finds nothing, after runs of every built-in agent (some failing; the
//! `content` agent drafting with a live `llm` connector at a local server,
//! so the `neonhub_llm_*` families are there) and requests with a made-up
//! method.

use std::io::Write;
use std::process::{Command, Stdio};

use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::InProcess;
use neonhub_test_support::tools;
use serde_json::json;

#[actix_rt::test]
async fn metrics_pass_promtool_check() {
    let promtool = tools::required(
        "NEONHUB_PROMTOOL",
        "promtool",
        Some("target/tools/bin/promtool"),
    );
    let vendor = TestServer::start(|_| {
        (
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Title\nBody"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
            .to_string(),
        )
    });
    let base_url = vendor.base_url.clone();
    let hub = InProcess::start_with(
        move |mut options| {
            // Live LLM (it has a key), every other connector a mock (none).
            options.connectors.mode = None;
            options.connectors.llm.api_key = Some(neonhub_actors::Secret::new("sk-test"));
            options.connectors.llm.base_url = Some(base_url);
            options
        },
        |c| c,
    )
    .await;
    let input = json!({
        "to": "+15551234567", "body": "hi", "subject": "s", "channel": "#ops",
        "text": "t", "topic": "t",
    });
    for agent in ["echo", "content", "email", "sms", "slack"] {
        let (status, _) = hub.post_run(&json!({"agent": agent, "input": input})).await;
        assert!(status == 200 || status == 422, "{agent}: {status}");
    }
    // A content run that gets as far as its draft.
    let draft = json!({"agent": "content", "input": {"topic": "boots"}});
    let (status, run) = hub.post_run(&draft).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["output"]["model"], "gpt-4o-mini", "{run}");
    let bad_number = json!({"agent": "sms", "input": {"to": "not a number", "body": "x"}});
    hub.post_run(&bad_number).await;
    let odd_method = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    hub.client
        .request(odd_method, hub.url("/v1/runs"))
        .send()
        .await
        .unwrap();
    let text = hub
        .client
        .get(hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("_bucket{"),
        "histograms are rendered:\n{text}"
    );
    assert!(text.contains("neonhub_circuit_breaker_state"), "{text}");
    assert!(
        text.contains(r#"neonhub_llm_cost_usd_total{connector="llm",model="gpt-4o-mini"}"#)
            && text.contains("# TYPE neonhub_llm_tokens_total counter"),
        "{text}"
    );

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\n--- the text:\n{text}",
        output.status
    );
    hub.stop().await;
}
