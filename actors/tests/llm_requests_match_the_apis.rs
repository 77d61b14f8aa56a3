//! The `llm` connector against a local server standing in for each API:
//! the request is exactly what OpenAI's Chat Completions and Anthropic's
//! Messages document (path, headers, JSON body, streaming off), their
//! documented answers (a `chat.completion` object, a `message` object) are
//! read into `{model, content, input_tokens, output_tokens, cost_usd,
//! finish_reason}`; a 429 is sent again no sooner than its `Retry-After`;
//! the API key is in no error and no event; and the mock answers the same
//! prompt the same way, without any network.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use neonhub_actors::{
    AgentOptions, Connector, ConnectorOptions, ContentAgent, Llm, LlmProvider, OrchestratorBuilder,
    RetryPolicy, Secret, SubmitRun,
};
use neonhub_events::Usage;
use neonhub_test_support as support;
use neonhub_test_support::http::{Reply, Seen, TestServer};
use serde_json::{Value, json};

const KEY: &str = "sk-test-9f8e7d6c5b4a39281706";

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn body(seen: &Seen) -> Value {
    serde_json::from_str(&seen.body).expect("a JSON body")
}

fn chat_input() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "system": "You write marketing copy.",
        "messages": [
            {"role": "user", "content": "A tagline for Neon Boots."},
            {"role": "assistant", "content": "Walk on light."},
            {"role": "user", "content": "Shorter."}
        ],
        "max_tokens": 64,
        "temperature": 0.2
    })
}

/// A `chat.completion` object as the Chat Completions reference shows it.
fn openai_completion() -> String {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Glow on.", "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035"
    })
    .to_string()
}

/// A `message` object as the Messages reference shows it.
fn anthropic_message() -> String {
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Glow "}, {"type": "text", "text": "on."}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
    .to_string()
}

#[actix::test]
async fn openai_chat_completions_request_and_answer() {
    let server = TestServer::start(|_| (200, openai_completion()));
    let llm = Llm::live(
        LlmProvider::OpenAi,
        format!("{}/v1", server.base_url),
        Secret::new(KEY),
    );

    let output = llm.call("chat", &chat_input()).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        body(request),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You write marketing copy."},
                {"role": "user", "content": "A tagline for Neon Boots."},
                {"role": "assistant", "content": "Walk on light."},
                {"role": "user", "content": "Shorter."}
            ],
            "stream": false,
            "max_tokens": 64,
            "temperature": 0.2
        })
    );
    // gpt-4o-mini: $0.15 and $0.60 per million tokens.
    let cost = (1117.0 * 0.15 + 46.0 * 0.60) / 1e6;
    assert_eq!(
        output,
        json!({
            "model": "gpt-4o-mini-2024-07-18",
            "content": "Glow on.",
            "input_tokens": 1117,
            "output_tokens": 46,
            "cost_usd": cost,
            "finish_reason": "stop"
        })
    );
    assert!(Usage::from_output(&output).is_some());
    server.stop().await;
}

#[actix::test]
async fn anthropic_messages_request_and_answer() {
    let server = TestServer::start(|_| (200, anthropic_message()));
    let llm = Llm::live(LlmProvider::Anthropic, &server.base_url, Secret::new(KEY));
    let mut input = chat_input();
    input["model"] = json!("claude-3-5-haiku-latest");
    input.as_object_mut().unwrap().remove("max_tokens");

    let output = llm.call("chat", &input).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(header(request, "x-api-key"), Some(KEY));
    assert_eq!(header(request, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        request.authorization, None,
        "Anthropic takes x-api-key only"
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        body(request),
        json!({
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 1024,
            "system": "You write marketing copy.",
            "messages": [
                {"role": "user", "content": "A tagline for Neon Boots."},
                {"role": "assistant", "content": "Walk on light."},
                {"role": "user", "content": "Shorter."}
            ],
            "stream": false,
            "temperature": 0.2
        })
    );
    // claude-3-5-haiku: $0.80 and $4 per million tokens.
    let cost = (2095.0 * 0.80 + 503.0 * 4.0) / 1e6;
    assert_eq!(
        output,
        json!({
            "model": "claude-3-5-haiku-20241022",
            "content": "Glow on.",
            "input_tokens": 2095,
            "output_tokens": 503,
            "cost_usd": cost,
            "finish_reason": "end_turn"
        })
    );
    server.stop().await;
}

#[actix::test]
async fn a_429_is_sent_again_no_sooner_than_its_retry_after() {
    let (_dir, store) = support::store();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let server = TestServer::start_replying(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(
                429,
                r#"{"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}"#,
            )
            .header("Retry-After", "1")
        } else {
            Reply::new(200, anthropic_message())
        }
    });
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| ContentAgent::new(true), AgentOptions::default())
        .connector(
            Llm::live(LlmProvider::Anthropic, &server.base_url, Secret::new(KEY)),
            ConnectorOptions {
                retry: RetryPolicy::attempts(3, Duration::from_millis(5)),
                ..ConnectorOptions::default()
            },
        )
        .start()
        .unwrap();

    let outcome = orchestrator
        .send(SubmitRun::intent(
            "content.generate",
            json!({"topic": "Neon Boots", "channel": "slack"}),
        ))
        .await
        .unwrap()
        .unwrap();

    assert!(outcome.is_success(), "{outcome:?}");
    let output = outcome.result.clone().unwrap();
    assert_eq!(output["body"], json!("Glow on."));
    assert_eq!(output["model"], json!("claude-3-5-haiku-20241022"));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "sent again {gap:?} after a 429 that said Retry-After: 1"
    );
    let children = support::child_runs(&store, outcome.run_id).await;
    assert_eq!(children.len(), 1);
    let events = support::events(&store, children[0]).await;
    assert_eq!(
        support::shape(&events),
        [
            "started#1",
            "failed#1(rate_limited, will retry)",
            "started#2",
            "succeeded#2"
        ]
    );
    server.stop().await;
}

#[actix::test]
async fn the_api_key_is_in_no_error_and_no_event() {
    let (_dir, store) = support::store();
    // OpenAI echoes part of a wrong key; this server echoes all of it.
    let server = TestServer::start(|_| {
        (
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
            .to_string(),
        )
    });
    let llm = Llm::live(LlmProvider::OpenAi, &server.base_url, Secret::new(KEY));
    let error = llm.call("chat", &chat_input()).await.unwrap_err();
    assert!(!error.message().contains(KEY), "{}", error.message());
    assert!(
        !error.message().contains("9f8e7d6c5b4a"),
        "{}",
        error.message()
    );
    assert!(!error.is_retryable(), "a wrong key is not retried: {error}");
    assert!(error.message().contains("invalid_api_key"), "{error}");

    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(|| ContentAgent::new(true), AgentOptions::default())
        .connector(llm, ConnectorOptions::default())
        .start()
        .unwrap();
    let outcome = orchestrator
        .send(SubmitRun::intent(
            "content.generate",
            json!({"topic": "Neon Boots"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(!outcome.is_success());
    let everything = format!("{:?}", support::events(&store, outcome.run_id).await)
        + &format!(
            "{:?}",
            support::events(&store, support::child_runs(&store, outcome.run_id).await[0]).await
        );
    assert!(everything.contains("invalid_api_key"), "{everything}");
    assert!(!everything.contains("9f8e7d6c5b4a"), "{everything}");

    // Nothing listening: the error names the connection, not the key.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = Llm::live(
        LlmProvider::OpenAi,
        format!("http://127.0.0.1:{port}"),
        Secret::new(KEY),
    );
    server.stop().await;
    let error = refused.call("chat", &chat_input()).await.unwrap_err();
    assert!(
        error.is_retryable() && !error.may_have_had_effect(),
        "{error}"
    );
    assert!(!error.message().contains(KEY), "{}", error.message());
}

#[actix::test]
async fn the_mock_answers_the_same_prompt_the_same_way_without_a_network() {
    let llm = Llm::mock();
    assert!(!llm.is_live());
    let a = llm.call("chat", &chat_input()).await.unwrap();
    let again = llm.call("chat", &chat_input()).await.unwrap();
    assert_eq!(a, again);
    let mut other = chat_input();
    other["messages"][2]["content"] = json!("Longer.");
    let b = llm.call("chat", &other).await.unwrap();
    assert_ne!(
        a["content"], b["content"],
        "a different prompt, another answer"
    );
    let usage = Usage::from_output(&a).unwrap();
    assert_eq!(usage.model, "gpt-4o-mini");
    assert!(usage.input_tokens > 10 && usage.output_tokens > 0, "{a}");
    assert!(usage.output_tokens <= 64, "{a}");
    assert!(usage.cost_usd > 0.0);
}
