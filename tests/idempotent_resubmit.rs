//! Resubmitting a run id answers that run and appends nothing, whether the
//! resubmission comes after the run finished or while it runs; the same id
//! with another agent or input is refused with 409 `run_id_conflict`.

use neonhub_test_support::service::InProcess;
use serde_json::json;

#[actix_rt::test]
async fn resubmitting_a_run_id_answers_that_run_and_appends_nothing() {
    let hub = InProcess::start().await;
    let run_id = "01932c4e-7c1a-7000-8000-00000000abcd";
    let body = json!({"agent": "echo", "input": {"n": 1}, "run_id": run_id});
    let (status, first) = hub.post_run(&body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["run_id"], run_id);
    assert_eq!(first["output"], json!({"n": 1}));
    let head = hub.head().await;

    // After it finished: the same request is answered with the same run.
    let (status, again) = hub.post_run(&body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["status"], "succeeded");
    assert_eq!(again["output"], first["output"]);
    // The id is an idempotency key: another input or another agent under
    // it is another request, refused with 409 and nothing appended.
    for other in [
        json!({"agent": "echo", "input": {"n": 2}, "run_id": run_id}),
        json!({"agent": "content", "input": {"n": 1}, "run_id": run_id}),
    ] {
        let (status, refused) = hub.post_run(&other).await;
        assert_eq!(status, 409, "{other} -> {refused}");
        assert_eq!(refused["error"]["code"], "run_id_conflict", "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(run_id), "{message}");
    }
    let (status, accepted) = hub
        .client
        .post(hub.url("/v1/runs?wait=false"))
        .json(&body)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert!(status == 200 || status == 202, "{status}");
    let accepted: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(accepted["run_id"], run_id);
    assert_eq!(hub.head().await, head, "resubmissions appended nothing");

    // Concurrent submissions of one new id: one run, every caller its outcome.
    let racing = "01932c4e-7c1a-7000-8000-00000000beef";
    let body = json!({"intent": "sms.send", "input": {"to": "+15550001111", "body": "once"}, "run_id": racing});
    let answers = futures_util::future::join_all((0..8).map(|_| hub.post_run(&body))).await;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["run_id"], racing);
        assert_eq!(answer["status"], "succeeded");
        assert_eq!(answer["output"], answers[0].1["output"]);
    }
    // One agent run and one connector call: four events, not more.
    assert_eq!(hub.head().await, head + 4);
    let (_, events) = hub.get(&format!("/v1/runs/{racing}/events")).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    let (_, listed) = hub.get("/v1/runs?kind=agent&limit=100").await;
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
    hub.stop().await;
}
