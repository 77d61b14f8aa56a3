//! A run still going when shutdown's drain deadline passes is cut off: its
//! step, whose request is on the wire, records how it ended (`in_doubt`:
//! it may have reached Twilio) before the store closes, so no step is left
//! `running`; the run itself stays unfinished in the log for the next start
//! to resume (tests/kill_9_mid_send_is_resumed_not_resent.rs and
//! actors/tests/resume_interrupted_runs.rs show how a resume replays it).

use std::sync::atomic::Ordering;
use std::time::Duration;

use neonhub_actors::{ConnectorsConfig, Secret};
use neonhub_projections::{RunQueries, RunStatus};
use neonhub_test_support::service::InProcess;
use neonhub_test_support::{silent_server, wait_until};
use serde_json::{Value, json};

#[actix_rt::test]
async fn runs_past_the_drain_deadline_are_cut_off_with_no_step_left_running() {
    // A Twilio that accepts connections and never answers.
    let (twilio, release) = silent_server();
    let hub = InProcess::start_with(
        |mut o| {
            // Live because its credentials are set; Gmail and Slack stay mock.
            let mut connectors = ConnectorsConfig::default();
            connectors.twilio.account_sid = Some("AC123".into());
            connectors.twilio.auth_token = Some(Secret::new("twilio-test-token"));
            connectors.twilio.from = Some("+15005550006".into());
            connectors.twilio.base_url = twilio.clone();
            connectors.twilio.lookup_base_url = twilio.clone();
            o.connectors = connectors;
            o
        },
        |c| c,
    )
    .await;
    let response = hub
        .client
        .post(hub.url("/v1/runs?wait=false"))
        .json(&json!({"intent": "sms.send", "input": {"to": "+15550001234", "body": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.unwrap();
    let run_id: neonhub_events::RunId = accepted["run_id"].as_str().unwrap().parse().unwrap();
    wait_until("the run and its Twilio call to start", || async {
        hub.head().await == 2
    })
    .await;

    let InProcess {
        service,
        server,
        dir,
        ..
    } = hub;
    server.stop().await.unwrap();
    let report = service.shutdown(Duration::from_millis(50)).await.unwrap();
    assert_eq!(report.interrupted, [run_id], "{report:?}");
    assert_eq!(
        report.checkpoint.0, 3,
        "the table applied the step's closing event, and nothing else"
    );

    let table = RunQueries::open(dir.path().join(neonhub::PROJECTION_FILE)).unwrap();
    let detail = table.get(run_id).unwrap().unwrap();
    assert_eq!(detail.run.status, RunStatus::Running, "left to resume");
    assert_eq!(detail.children.len(), 1);
    assert_eq!(
        detail.children[0].status,
        RunStatus::Failed,
        "a step left running"
    );
    assert_eq!(
        detail.children[0].error.as_ref().unwrap().kind.as_str(),
        "in_doubt"
    );

    release.store(true, Ordering::Release);
}
