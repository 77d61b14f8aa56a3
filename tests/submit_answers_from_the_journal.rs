//! `POST /v1/runs` goes one way: `wait=false` is answered 202 once
//! `RunStarted` is durable (a notification from the orchestrator, so never a
//! finished run's 200, however fast the run), and `wait=true` answers with
//! the row the orchestrator folded as it appended, which is the row the
//! AgentRun table then holds, column by column.

use neonhub_test_support::service::InProcess;
use neonhub_test_support::wait_until;
use serde_json::{Value, json};

/// Runs submitted with `wait=false`; on the old path (polling the store for
/// `RunStarted` while racing the outcome) a fast `echo` run often won the
/// race and was answered 200 with its row.
const NO_WAIT_RUNS: usize = 200;

#[actix_rt::test]
async fn wait_false_is_always_202_once_the_start_is_durable() {
    let hub = InProcess::start().await;
    let mut run_ids = Vec::with_capacity(NO_WAIT_RUNS);
    for i in 0..NO_WAIT_RUNS {
        let response = hub
            .client
            .post(hub.url("/v1/runs?wait=false"))
            .json(&json!({"agent": "echo", "input": {"n": i}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "run {i}: {body}");
        assert_eq!(body["status"], "running", "{body}");
        let run_id = body["run_id"].as_str().unwrap().to_owned();
        // Durable before the answer: the log already has the run's stream.
        let (status, events) = hub.get(&format!("/v1/runs/{run_id}/events")).await;
        assert_eq!(status, 200, "{events}");
        assert_eq!(events["events"][0]["type"], "run.started.v1", "{events}");
        run_ids.push(run_id);
    }
    // Every accepted run goes to its end although nobody waited for it.
    for run_id in &run_ids {
        let path = format!("/v1/runs/{run_id}");
        wait_until("the run to succeed", || async {
            hub.get(&path).await.1["status"] == "succeeded"
        })
        .await;
    }
}

#[actix_rt::test]
async fn the_answer_is_the_row_the_table_holds() {
    let hub = InProcess::start().await;
    let bodies = [
        json!({"agent": "echo", "input": {"hello": "world"}}),
        json!({"intent": "sms.send", "input": {"to": "+15550100", "topic": "the sale"}}),
        // An invalid number: a connector failure, the run fails.
        json!({"intent": "sms.send", "input": {"to": "not a number", "topic": "x"}}),
        json!({"agent": "email", "input": {"to": "a@example.com", "topic": "spring"}}),
    ];
    for body in bodies {
        let (status, answer) = hub.post_run(&body).await;
        assert_eq!(status, 200, "{answer}");
        assert_ne!(answer["status"], "running", "{answer}");
        let run_id = answer["run_id"].as_str().unwrap().to_owned();
        hub.service.caught_up().await.unwrap();
        let (status, mut row) = hub.get(&format!("/v1/runs/{run_id}")).await;
        assert_eq!(status, 200, "{row}");
        row.as_object_mut().unwrap().remove("children");
        assert_eq!(answer, row, "the answer and the table's row differ");
    }
}
