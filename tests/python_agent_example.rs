//! The Python example agent (`examples/python/agent.py`, standard library
//! only) runs against `neonhub serve --config` as the README shows: its run
//! succeeds with its output, its Slack notification is a journaled step
//! (a child run in the run's tree), and the AgentRun table holds both rows.
//! A machine without `python3` fails this test, saying so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use neonhub_test_support::service::ServeProcess;
use neonhub_test_support::wait_until_within;
use serde_json::{Value, json};

/// The example agent, stopped on drop.
struct PythonAgent(Child);

impl Drop for PythonAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the example on a free port; returns it and its URL.
fn start_example() -> (PythonAgent, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/agent.py");
    let mut child = Command::new("python3")
        .args([script, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "python3 is needed to run the Python example agent ({e}); install Python 3 \
                 (Debian: apt-get install python3)"
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("the example did not say where it listens: {line:?}"))
        .to_owned();
    (PythonAgent(child), url)
}

#[actix_rt::test]
async fn the_python_example_runs_its_step_and_lands_in_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, url) = start_example();
    let config = dir.path().join("neonhub.toml");
    std::fs::write(
        &config,
        format!(
            "[[agents]]\nname = \"summarize\"\nintents = [\"text.summarize\"]\nurl = \"{url}\"\n\
             timeout = \"30s\"\nretries = 3\n"
        ),
    )
    .unwrap();
    let serve = ServeProcess::spawn(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let client = reqwest::Client::new();
    let text = "neonhub runs agents in any language and journals every step they take";
    let run: Value = client
        .post(format!("{}/v1/runs", serve.base))
        .json(&json!({"intent": "text.summarize",
                      "input": {"text": text, "channel": "#reports"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["target"], "summarize", "{run}");
    assert_eq!(run["output"]["words"], 12, "{run}");
    assert_eq!(run["output"]["summary"], text, "{run}");
    // What the (mock) Slack connector answered, through the step.
    assert_eq!(run["output"]["posted"]["channel"], "#reports", "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_owned();

    // Its step, in the tree.
    let tree: Value = client
        .get(format!("{}/v1/runs/{run_id}/tree", serve.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let step = tree["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["parent_run_id"] == run_id.as_str())
        .unwrap_or_else(|| panic!("no step in {tree}"))
        .clone();
    assert_eq!(
        (&step["target"], &step["operation"], &step["status"]),
        (&json!("slack"), &json!("post_message"), &json!("succeeded")),
        "{step}"
    );
    assert_eq!(step["input"]["text"], format!("Summary: {text}"), "{step}");

    // Both rows in the AgentRun table.
    let rows = |kind: &'static str| {
        let (client, base) = (client.clone(), serve.base.clone());
        async move {
            let page: Value = client
                .get(format!("{base}/v1/runs?kind={kind}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["runs"].as_array().cloned().unwrap_or_default()
        }
    };
    wait_until_within("both rows in the table", Duration::from_secs(10), || {
        let (agents, steps) = (rows("agent"), rows("connector"));
        async move { agents.await.len() == 1 && steps.await.len() == 1 }
    })
    .await;
    let row = rows("agent").await.remove(0);
    assert_eq!(
        (&row["run_id"], &row["target"], &row["status"]),
        (&json!(run_id), &json!("summarize"), &json!("succeeded")),
        "{row}"
    );
}
