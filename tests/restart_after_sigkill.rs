//! SIGKILL mid-load, then restart: every run that got a 200 is in the table
//! with its outcome, every other submitted run is resumed to its end (or was
//! never recorded), nothing is left running, and `audit verify` passes.

use std::collections::HashMap;
use std::time::Duration;

use neonhub_test_support::load::{Load, Told};
use neonhub_test_support::service::{ServeProcess, run_cli};
use neonhub_test_support::wait_until_within;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_keeps_every_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(dir.path(), &[]);
    let load = Load::start(&serve.base, 32);
    load.wait_for_answers(300).await;
    serve.kill();
    let told: Vec<Told> = load.told().await;

    let serve = ServeProcess::spawn(dir.path(), &[]);
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", serve.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // Runs the kill cut off are resumed at start-up; let them end.
    wait_until_within("the resumed runs to end", Duration::from_secs(20), || {
        let (client, base) = (client.clone(), serve.base.clone());
        async move {
            let running: Value = client
                .get(format!("{base}/v1/runs?status=running"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            running["runs"].as_array().is_some_and(Vec::is_empty)
        }
    })
    .await;
    let mut outcomes: HashMap<String, u16> = HashMap::new();
    let (mut acknowledged, mut interrupted) = (0, 0);
    for t in &told {
        let response = client
            .get(format!("{}/v1/runs/{}", serve.base, t.run_id))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        outcomes.insert(t.run_id.clone(), code);
        let run: Value = response.json().await.unwrap();
        if t.status == Some(200) {
            acknowledged += 1;
            assert_eq!(code, 200, "an acknowledged run is missing: {}", t.run_id);
            assert_eq!(run["status"].as_str(), t.run_status.as_deref(), "{run}");
        } else if code == 200 {
            assert_ne!(run["status"], "running", "{run}");
            if run["error"]["kind"] == "interrupted" {
                interrupted += 1;
            }
        } else {
            assert_eq!(code, 404, "{run}");
        }
    }
    assert!(acknowledged >= 300);
    // Nothing at all is left running, connector calls included.
    let running = client
        .get(format!("{}/v1/runs?status=running", serve.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(running["runs"].as_array().unwrap().len(), 0, "{running}");
    eprintln!(
        "{acknowledged} acknowledged, {} cut off, {interrupted} closed as interrupted",
        told.len() - acknowledged
    );
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));

    let audit = run_cli(dir.path(), &["audit", "verify"]);
    let out = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        out.starts_with("ok: ") && out.contains("head hash"),
        "{out}"
    );
}
