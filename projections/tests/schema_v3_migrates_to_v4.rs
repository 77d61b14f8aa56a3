//! Given an AgentRun table written by a version 3 build (no usage columns,
//! no `neonhub_llm_*` series) over a log holding language-model steps, when
//! this build opens it, then it is migrated in place to version 4: the
//! rows of the LLM steps get their model, tokens and cost from their
//! recorded output, the LLM metric series appear, and the table still
//! equals the log column by column (`audit verify`) and renders the same
//! metrics as a table built fresh.

use neonhub_events::{RunEvent, RunId, RunKind, RunStarted, RunSucceeded, Timestamp, Usage};
use neonhub_projections::{
    AgentRunsProjection, Error, ProjectionRunner, RunQueries, SCHEMA_VERSION, verify,
};
use neonhub_test_support::projections as support;
use serde_json::{Value, json};

/// An agent run and its one `llm` `chat` step, succeeded with `output`.
fn agent_with_llm_step(at: u64, output: Value) -> Vec<RunEvent> {
    let agent = RunId::new();
    let step = RunId::new();
    let correlation = uuid::Uuid::now_v7();
    let started = |run_id, kind, target: &str, operation: &str, parent| {
        RunEvent::Started(RunStarted {
            run_id,
            kind,
            target: target.to_owned(),
            operation: operation.to_owned(),
            intent: None,
            input: json!({"topic": "boots"}),
            attempt: 1,
            parent_run_id: parent,
            correlation_id: correlation,
            started_at: Timestamp(at),
            request_digest: None,
            step: parent.map(|_| "draft".to_owned()),
            resumed: false,
            node: None,
            paused_micros: 0,
        })
    };
    let succeeded = |run_id, output, finished| {
        RunEvent::Succeeded(RunSucceeded {
            run_id,
            attempt: 1,
            output,
            duration_micros: finished - at,
            finished_at: Timestamp(finished),
        })
    };
    vec![
        started(agent, RunKind::Agent, "content", "run", None),
        started(step, RunKind::Connector, "llm", "chat", Some(agent)),
        succeeded(step, output, at + 1_000),
        succeeded(agent, json!({"title": "t"}), at + 2_000),
    ]
}

fn chat_output(model: &str, input: u64, output: u64, cost: f64) -> Value {
    json!({"model": model, "content": "Walk on light.", "input_tokens": input,
           "output_tokens": output, "cost_usd": cost, "finish_reason": "stop"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_table_gets_the_usage_of_its_llm_steps() {
    let mut log = support::TestLog::open();
    let mut events = support::events(40, 3);
    events.extend(agent_with_llm_step(
        1_700_000_000_000_000,
        chat_output("gpt-4o-mini", 120, 30, 0.000036),
    ));
    events.extend(agent_with_llm_step(
        1_700_000_001_000_000,
        chat_output("gpt-4o-mini", 80, 20, 0.000024),
    ));
    events.extend(agent_with_llm_step(
        1_700_000_002_000_000,
        chat_output("claude-3-5-haiku-latest", 50, 10, 0.00008),
    ));
    log.append(&events).await;

    let fresh = log.db("fresh.sqlite");
    let mut runner = ProjectionRunner::new(
        log.store.clone(),
        AgentRunsProjection::open(&fresh).unwrap(),
    );
    runner.catch_up().await.unwrap();
    drop(runner);

    // The same table as a version 3 build wrote it: the usage columns and
    // their index absent, no LLM series.
    let old = log.db("old.sqlite");
    std::fs::copy(&fresh, &old).unwrap();
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "DROP INDEX agent_runs_with_usage;
         ALTER TABLE agent_runs DROP COLUMN model;
         ALTER TABLE agent_runs DROP COLUMN input_tokens;
         ALTER TABLE agent_runs DROP COLUMN output_tokens;
         ALTER TABLE agent_runs DROP COLUMN cost_usd;
         DELETE FROM run_metric_counters WHERE family LIKE 'neonhub_llm_%';
         PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    // Read as it is, it is refused, saying how to migrate it.
    match verify(&*log.store, &old).await {
        Err(Error::SchemaOutdated {
            found: 3,
            current: 4,
            ..
        }) => {}
        other => panic!("a version 3 file was checked: {other:?}"),
    }
    let refused = RunQueries::open(&old).unwrap_err().to_string();
    assert!(refused.contains("start `neonhub serve` once"), "{refused}");

    let migrated = AgentRunsProjection::open(&old).unwrap();
    drop(migrated);
    let conn = rusqlite::Connection::open(&old).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
    let mut stmt = conn
        .prepare(
            "SELECT model, input_tokens, output_tokens, cost_usd FROM agent_runs
             WHERE model IS NOT NULL ORDER BY first_position",
        )
        .unwrap();
    let usage: Vec<(String, i64, i64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        usage,
        [
            ("gpt-4o-mini".to_owned(), 120, 30, 0.000036),
            ("gpt-4o-mini".to_owned(), 80, 20, 0.000024),
            ("claude-3-5-haiku-latest".to_owned(), 50, 10, 0.00008),
        ]
    );
    drop(stmt);
    drop(conn);

    let report = verify(&*log.store, &old).await.unwrap();
    assert!(report.matches(), "{report}");
    assert!(report.is_complete(), "{report}");
    let text = support::metrics_text(&old);
    assert_eq!(text, support::metrics_text(&fresh));
    for line in [
        r#"neonhub_llm_tokens_total{connector="llm",model="gpt-4o-mini",direction="input"} 200"#,
        r#"neonhub_llm_tokens_total{connector="llm",model="gpt-4o-mini",direction="output"} 50"#,
        r#"neonhub_llm_cost_usd_total{connector="llm",model="gpt-4o-mini"} 0.00006"#,
        r#"neonhub_llm_cost_usd_total{connector="llm",model="claude-3-5-haiku-latest"} 0.00008"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let usage = Usage::from_output(&chat_output("m", 1, 2, 0.5)).unwrap();
    assert_eq!(usage.cost_nano_usd(), 500_000_000);
}
