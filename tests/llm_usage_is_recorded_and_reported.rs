//! Given `neonhub serve --config` with `[connectors.llm]` pointing at a
//! local server that answers as OpenAI's Chat Completions does (its key
//! read from the variable `api_key = { env = ... }` names, its prices from
//! the file), and an agent served over HTTP that asks the model through
//! `POST /v1/runs/{id}/steps`:
//! - the built-in `content` agent drafts with the model as its step
//!   `draft`, and the HTTP agent's step `ask` reaches it too;
//! - each LLM step's table row holds the model, tokens and cost;
//! - `/metrics` counts the tokens and the cost per model;
//! - `GET /v1/reports/agents` and `neonhub report` sum them per agent (a
//!   step counts to the agent of its parent run);
//! - and `audit verify` finds the table, the new columns included, equal to
//!   the log.

use actix_web::{App, HttpResponse, HttpServer, web};
use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::{ServeProcess, run_cli, sample, stdout};
use neonhub_test_support::wait_until;
use serde_json::{Value, json};

const KEY: &str = "sk-test-scenario-0123456789";

fn completion() -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Walk on light\nNeon Boots glow."}}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 50, "total_tokens": 250}
    })
    .to_string()
}

/// An agent that asks the model one question as its step `ask`.
async fn ask(request: web::Json<Value>) -> HttpResponse {
    let request = request.into_inner();
    let answer = reqwest::Client::new()
        .post(request["steps_url"].as_str().unwrap())
        .bearer_auth(request["steps_token"].as_str().unwrap())
        .json(
            &json!({"step": "ask", "connector": "llm", "operation": "chat",
            "attempt": request["attempt"],
            "input": {"messages": [{"role": "user", "content": "Name a colour."}]}}),
        )
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    if status != 200 {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": {"message": format!("step {status}: {body}")}}));
    }
    HttpResponse::Ok().json(json!({"said": body["output"]["content"]}))
}

async fn get(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn submit(base: &str, body: Value) -> Value {
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

fn report_of<'a>(agents: &'a [Value], kind: &str, target: &str) -> &'a Value {
    agents
        .iter()
        .find(|a| a["kind"] == kind && a["target"] == target)
        .unwrap_or_else(|| panic!("no {kind} {target} in {agents:?}"))
}

#[actix_rt::test]
async fn llm_usage_reaches_the_table_the_metrics_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = TestServer::start(|_| (200, completion()));
    let agent = HttpServer::new(|| App::new().route("/run", web::post().to(ask)))
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
    let agent_url = format!("http://{}/run", agent.addrs()[0]);
    actix_rt::spawn(agent.run());
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        format!(
            "[[agents]]\nname = \"asker\"\nintents = [\"ask\"]\nurl = \"{agent_url}\"\n\n\
             [connectors.llm]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\n\
             model = \"gpt-4o-mini\"\napi_key = {{ env = \"SCENARIO_LLM_KEY\" }}\n\
             tokens_per_minute = 100000\nrate = \"600/min\"\n\
             prices = {{ \"gpt-4o-mini\" = {{ input = 1.0, output = 2.0 }} }}\n",
            vendor.base_url
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let serve =
        ServeProcess::spawn_with(&data, &["--config", config.to_str().unwrap()], |command| {
            command.env("SCENARIO_LLM_KEY", KEY);
            for name in [
                "NEONHUB_LLM_PROVIDER",
                "NEONHUB_LLM_BASE_URL",
                "NEONHUB_LLM_MODEL",
                "NEONHUB_LLM_API_KEY",
                "NEONHUB_CONNECTORS",
            ] {
                command.env_remove(name);
            }
        });

    for topic in ["Neon Boots", "Neon Hats"] {
        let run = submit(
            &serve.base,
            json!({"agent": "content", "input": {"topic": topic, "channel": "email"}}),
        )
        .await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["output"]["title"], "Walk on light", "{run}");
        assert_eq!(run["output"]["model"], "gpt-4o-mini", "{run}");
    }
    let asked = submit(&serve.base, json!({"agent": "asker", "input": {}})).await;
    assert_eq!(asked["status"], "succeeded", "{asked}");
    assert_eq!(asked["output"]["said"], "Walk on light\nNeon Boots glow.");

    let seen = vendor.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["stream"], false);
        assert_eq!(body["model"], "gpt-4o-mini");
    }

    // 200 and 50 tokens a call at $1 and $2 per million: $0.0003 a call.
    let series_in =
        r#"neonhub_llm_tokens_total{connector="llm",model="gpt-4o-mini",direction="input"}"#;
    let metrics_url = format!("{}/metrics", serve.base);
    wait_until("the three calls are counted", || {
        let url = metrics_url.clone();
        async move { sample(&text(url).await, series_in) == 600.0 }
    })
    .await;
    let metrics = text(metrics_url).await;
    assert_eq!(
        sample(
            &metrics,
            r#"neonhub_llm_tokens_total{connector="llm",model="gpt-4o-mini",direction="output"}"#
        ),
        150.0
    );
    let cost = sample(
        &metrics,
        r#"neonhub_llm_cost_usd_total{connector="llm",model="gpt-4o-mini"}"#,
    );
    assert!((cost - 0.0009).abs() < 1e-12, "{cost}");

    // The table's rows of the steps.
    let db = rusqlite::Connection::open(data.join("agent_runs.sqlite")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT target, operation, model, input_tokens, output_tokens, cost_usd
             FROM agent_runs WHERE kind = 'connector' ORDER BY first_position",
        )
        .unwrap();
    let rows: Vec<(String, String, String, i64, i64, f64)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (target, operation, model, input, output, cost) in &rows {
        assert_eq!(
            (target.as_str(), operation.as_str(), model.as_str()),
            ("llm", "chat", "gpt-4o-mini")
        );
        assert_eq!((*input, *output), (200, 50));
        assert!((cost - 0.0003).abs() < 1e-12, "{cost}");
    }
    let agent_usage: i64 = db
        .query_row(
            "SELECT count(*) FROM agent_runs WHERE kind = 'agent' AND model IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(agent_usage, 0, "agent rows carry no usage of their own");
    drop(stmt);
    drop(db);

    // The report: per agent, by the steps' parent runs.
    let report = get(format!("{}/v1/reports/agents", serve.base)).await;
    let agents = report["agents"].as_array().unwrap();
    let content = report_of(agents, "agent", "content");
    assert_eq!(
        (&content["input_tokens"], &content["output_tokens"]),
        (&json!(400), &json!(100)),
        "{content}"
    );
    assert!((content["cost_usd"].as_f64().unwrap() - 0.0006).abs() < 1e-12);
    let asker = report_of(agents, "agent", "asker");
    assert_eq!(asker["input_tokens"], 200, "{asker}");
    let llm = report_of(agents, "connector", "llm");
    assert_eq!(llm["output_tokens"], 150, "{llm}");
    let echo_less = agents.iter().filter(|a| a["input_tokens"] != 0).count();
    assert_eq!(
        echo_less, 3,
        "only content, asker and llm used tokens: {agents:?}"
    );

    let cli = stdout(&run_cli(&data, &["report", "--format", "json"]));
    let cli: Value = serde_json::from_str(&cli).unwrap();
    let content = report_of(cli["agents"].as_array().unwrap(), "agent", "content");
    assert_eq!(content["input_tokens"], 400, "{content}");
    let table = stdout(&run_cli(&data, &["report"]));
    assert!(
        table.contains("TOKENS IN") && table.contains("COST USD"),
        "{table}"
    );

    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
    let verified = run_cli(&data, &["audit", "verify"]);
    assert!(
        verified.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    vendor.stop().await;
}

async fn text(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}
