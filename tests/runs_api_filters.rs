//! The reporting filters of the HTTP API, against a real `neonhub serve`
//! over a log of runs shaped by the test: `GET /v1/runs` by kind, error
//! kind and correlation and longest first with its own cursor; `GET
//! /v1/runs/{id}/tree` by a run id or a correlation id; `GET
//! /v1/reports/timeline` per hour or day with its bound.

use neonhub_events::ErrorKind;
use neonhub_test_support::runs::{HOUR, JAN_1, Run, record};
use neonhub_test_support::service::ServeProcess;
use serde_json::Value;

/// `neonhub serve` on `data`, with the AgentRun table built by `serve`
/// itself from the log (the one `record` built is removed).
fn serve(data: &std::path::Path) -> Api {
    std::fs::remove_file(data.join(neonhub::PROJECTION_FILE)).unwrap();
    Api {
        serve: ServeProcess::spawn(data, &[]),
        client: reqwest::Client::new(),
    }
}

struct Api {
    serve: ServeProcess,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.serve.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The run ids of `GET path` (a 200 with `runs`).
    async fn ids(&self, path: &str) -> Vec<String> {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        ids(&body)
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs in {body}"))
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

fn id(run: &Run) -> String {
    run.run_id.to_string()
}

#[actix_rt::test]
async fn runs_filter_by_kind_error_kind_and_correlation_and_sort_by_duration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = Run::agent("slack", JAN_1, 5_000).failing(ErrorKind::Agent);
    let call = Run::call(&agent, "slack", "post_message").failing(ErrorKind::InDoubt);
    let other = Run::agent("email", JAN_1 + HOUR, 9_000);
    let other_call = Run::call(&other, "slack", "post_message").failing(ErrorKind::Timeout);
    let slow = Run::agent("echo", JAN_1 + 2 * HOUR, 50_000);
    // (No run left running: `serve` would resume it at start-up.)
    record(
        &data,
        &[&agent, &call, &other, &other_call, &slow].map(Run::clone),
    );
    let api = serve(&data);

    assert_eq!(
        api.ids("/v1/runs?agent=slack&status=failed").await,
        [id(&other_call), id(&call), id(&agent)]
    );
    assert_eq!(
        api.ids("/v1/runs?agent=slack&status=failed&kind=agent")
            .await,
        [id(&agent)]
    );
    assert_eq!(api.ids("/v1/runs?error_kind=in_doubt").await, [id(&call)]);
    assert_eq!(
        api.ids(&format!("/v1/runs?correlation={}", other.correlation))
            .await,
        [id(&other_call), id(&other)]
    );
    assert_eq!(
        api.ids("/v1/runs?sort=started&kind=connector&error_kind=timeout")
            .await,
        [id(&other_call)]
    );

    // Longest first: finished runs only; a page at a time with its cursor.
    let longest = [&slow, &other, &other_call, &call, &agent].map(id);
    assert_eq!(api.ids("/v1/runs?sort=duration").await, longest);
    let mut paged = Vec::new();
    let mut path = "/v1/runs?sort=duration&limit=2".to_owned();
    loop {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, 200, "{body}");
        paged.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(cursor.starts_with('d'), "{cursor}");
                path = format!("/v1/runs?sort=duration&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(paged, longest);
    let (_, page) = api.get("/v1/runs?sort=duration&limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = api.get(&format!("/v1/runs?cursor={cursor}")).await;
    assert_eq!(status, 400, "a duration cursor for sort=started: {body}");
    assert_eq!(body["error"]["code"], "invalid_request");

    for (query, name) in [
        ("error_kind=oops", "error_kind"),
        ("correlation=nope", "correlation"),
        ("sort=size", "sort"),
        ("kind=robot", "kind"),
        ("since=1795975430", "since"),
    ] {
        let (status, body) = api.get(&format!("/v1/runs?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{name}:")),
            "{query}: {message}"
        );
    }
    assert_eq!(
        api.ids("/v1/runs?since=1767225600s&until=1767225601s")
            .await,
        [id(&call), id(&agent)]
    );
}

#[actix_rt::test]
async fn a_tree_is_every_run_of_the_request_by_run_or_correlation_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = Run::agent("triage", JAN_1, 8_000);
    let first = Run::call(&agent, "gmail", "list_messages");
    let second = Run::call(&agent, "slack", "post_message").failing(ErrorKind::RateLimited);
    // A second root run in the same request, recorded later.
    let again = Run::agent("echo", JAN_1 + 50, 100).in_correlation(agent.correlation);
    let unrelated = Run::agent("echo", JAN_1 + 5, 100);
    record(
        &data,
        &[&agent, &unrelated, &first, &second, &again].map(Run::clone),
    );
    let api = serve(&data);

    let (status, by_correlation) = api
        .get(&format!("/v1/runs/{}/tree", agent.correlation))
        .await;
    assert_eq!(status, 200, "{by_correlation}");
    assert_eq!(
        by_correlation["correlation_id"],
        agent.correlation.to_string().as_str()
    );
    assert_eq!(by_correlation["truncated"], false);
    // First-position order, rows exactly as `GET /v1/runs` has them.
    assert_eq!(
        ids(&by_correlation),
        [&agent, &first, &second, &again].map(id)
    );
    let (_, listed) = api
        .get(&format!(
            "/v1/runs?correlation={}&limit=10",
            agent.correlation
        ))
        .await;
    for row in by_correlation["runs"].as_array().unwrap() {
        let same = listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == row["run_id"])
            .unwrap();
        assert_eq!(row, same);
    }
    assert_eq!(
        by_correlation["runs"][2]["parent_run_id"],
        id(&agent).as_str()
    );
    for run in [&agent, &second, &again] {
        let (status, by_run) = api.get(&format!("/v1/runs/{}/tree", run.run_id)).await;
        assert_eq!(status, 200);
        assert_eq!(by_run, by_correlation);
    }

    let (status, body) = api
        .get("/v1/runs/0193a8f0-0000-7000-8000-000000000000/tree")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = api.get("/v1/runs/not-a-uuid/tree").await;
    assert_eq!(status, 400, "{body}");
}

#[actix_rt::test]
async fn the_timeline_counts_runs_failures_and_percentiles_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runs = [
        Run::agent("email", JAN_1 + 60_000_000, 1_000),
        Run::agent("email", JAN_1 + 120_000_000, 3_000),
        Run::agent("email", JAN_1 + 180_000_000, 0).failing(ErrorKind::Agent),
        Run::agent("email", JAN_1 + 2 * HOUR + 5, 7_000),
        Run::agent("sms", JAN_1 + 2 * HOUR + 9, 4_000),
    ];
    let call = Run::call(&runs[4], "twilio", "send_sms").failing(ErrorKind::Timeout);
    let mut all = runs.to_vec();
    all.push(call);
    record(&data, &all);
    let api = serve(&data);

    let window = "since=2026-01-01T00:00:00Z&until=2026-01-01T03:00:00Z";
    let (status, body) = api
        .get(&format!("/v1/reports/timeline?{window}&by=hour"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["by"], "hour");
    let buckets = body["buckets"].as_array().unwrap();
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-01T00:00:00.000000Z",
            "2026-01-01T01:00:00.000000Z",
            "2026-01-01T02:00:00.000000Z"
        ]
    );
    let counts: Vec<(u64, u64)> = buckets
        .iter()
        .map(|b| (b["runs"].as_u64().unwrap(), b["failures"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [(3, 1), (0, 0), (3, 1)]);
    assert_eq!(buckets[0]["p50_ms"], 2.0);
    assert_eq!(buckets[0]["p95_ms"], 3.0);
    assert!(buckets[1]["p99_ms"].is_null());

    let (_, connectors) = api
        .get(&format!(
            "/v1/reports/timeline?{window}&by=hour&kind=connector"
        ))
        .await;
    let counts: Vec<u64> = connectors["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["failures"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 0, 1]);
    let (_, sms) = api
        .get(&format!("/v1/reports/timeline?{window}&by=day&agent=sms"))
        .await;
    assert_eq!(sms["by"], "day");
    assert_eq!(sms["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(sms["buckets"][0]["runs"], 1);
    assert_eq!(sms["buckets"][0]["p50_ms"], 4.0);

    // More than 1000 buckets: a 400 saying to narrow the window.
    let (status, body) = api
        .get("/v1/reports/timeline?since=2025-01-01&until=2026-01-01&by=hour")
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("narrow"), "{message}");
    let (status, _) = api
        .get("/v1/reports/timeline?since=2025-01-01&until=2026-01-01&by=day")
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.get("/v1/reports/timeline?by=week").await;
    assert_eq!(status, 400, "{body}");
    // Without a window: the last 24 hours, by hour.
    let (status, body) = api.get("/v1/reports/timeline").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["buckets"].as_array().unwrap().len(), 25);
}
