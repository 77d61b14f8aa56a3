//! Runs submitted over HTTP land in the AgentRun table and in /metrics with
//! the outcomes the submitters were told, and the three agree.

use std::collections::HashMap;

use neonhub_test_support::service::{InProcess, sample};
use neonhub_test_support::workload::mixed_run;
use serde_json::Value;

#[actix_rt::test]
async fn submit_then_table_then_metrics_agree() {
    let hub = InProcess::start().await;
    let mut told: HashMap<String, (String, String)> = HashMap::new();
    let mut answers: HashMap<String, Value> = HashMap::new();
    let responses = futures_util::future::join_all((0..80).map(|i| {
        let body = mixed_run(i);
        let hub = &hub;
        async move { hub.post_run(&body).await }
    }))
    .await;
    for (status, body) in responses {
        assert_eq!(status, 200, "{body}");
        answers.insert(body["run_id"].as_str().unwrap().to_owned(), body.clone());
        told.insert(
            body["run_id"].as_str().unwrap().to_owned(),
            (
                body["target"].as_str().unwrap().to_owned(),
                body["status"].as_str().unwrap().to_owned(),
            ),
        );
    }
    let failed = told.values().filter(|(_, s)| s == "failed").count();
    assert!(
        (10..80).contains(&failed),
        "{failed} failed: the mix has failures and successes"
    );

    // Every run the clients were told about is in the table, as they were told.
    for (run_id, (target, status)) in &told {
        let (code, run) = hub.get(&format!("/v1/runs/{run_id}")).await;
        assert_eq!(code, 200, "{run}");
        assert_eq!(run["target"], *target);
        assert_eq!(run["status"], *status);
        assert_eq!(run["kind"], "agent");
        // The POST answered the run as the table holds it (less its children).
        let mut row = run.clone();
        row.as_object_mut().unwrap().remove("children");
        assert_eq!(answers[run_id], row);
        if target != "echo" && target != "content" {
            assert_eq!(run["children"].as_array().unwrap().len(), 1, "{run}");
        }
        let (code, events) = hub.get(&format!("/v1/runs/{run_id}/events")).await;
        assert_eq!(code, 200);
        let types: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types[0], "run.started.v1");
        assert_eq!(*types.last().unwrap(), format!("run.{status}.v1"));
    }

    // The listing, page by page, holds exactly those agent runs.
    let mut listed: HashMap<String, String> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/runs?kind=agent&limit=7&cursor={c}"),
            None => "/v1/runs?kind=agent&limit=7".to_owned(),
        };
        let (code, page) = hub.get(&path).await;
        assert_eq!(code, 200, "{page}");
        for run in page["runs"].as_array().unwrap() {
            listed.insert(
                run["run_id"].as_str().unwrap().to_owned(),
                run["status"].as_str().unwrap().to_owned(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed.len(), told.len());
    for (run_id, (_, status)) in &told {
        assert_eq!(listed.get(run_id), Some(status));
    }

    // /metrics and the report count the same runs per agent and status.
    hub.service.caught_up().await.unwrap();
    let metrics = hub.metrics().await;
    let (code, report) = hub.get("/v1/reports/agents").await;
    assert_eq!(code, 200);
    let mut expected: HashMap<(String, String), usize> = HashMap::new();
    for (target, status) in told.values() {
        *expected
            .entry((target.clone(), status.clone()))
            .or_default() += 1;
    }
    for ((target, status), n) in &expected {
        let series = format!("neonhub_agent_runs_total{{agent=\"{target}\",status=\"{status}\"}}");
        assert_eq!(sample(&metrics, &series), *n as f64, "{series}\n{metrics}");
        let row = report["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == *target && r["kind"] == "agent")
            .unwrap();
        assert_eq!(row[status.as_str()], *n as u64, "{row}");
    }
    assert_eq!(sample(&metrics, "neonhub_runs_in_flight"), 0.0);
    assert!(
        sample(
            &metrics,
            "neonhub_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"200\"}"
        ) >= 80.0
    );
    assert!(metrics.contains("neonhub_http_request_duration_seconds_bucket{route=\"/v1/runs\""));
    hub.stop().await;
}
