//! Load against a `neonhub serve` child: workers submit runs until the
//! server stops answering, recording what each request was told.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

/// What one request was told: its run id and the HTTP status (`None`: no
/// answer, the connection failed).
#[derive(Clone, Debug)]
pub struct Told {
    /// The run id the request chose.
    pub run_id: String,
    /// The HTTP status.
    pub status: Option<u16>,
    /// The run's `status` in the answer's body.
    pub run_status: Option<String>,
}

/// Load in progress: the worker tasks and the count of 200s so far.
#[derive(Debug)]
pub struct Load {
    ok: Arc<AtomicUsize>,
    workers: Vec<tokio::task::JoinHandle<Vec<Told>>>,
}

impl Load {
    /// Starts `workers` tasks submitting runs to `base` until each gets an
    /// error.
    pub fn start(base: &str, workers: usize) -> Self {
        let ok = Arc::new(AtomicUsize::new(0));
        Self {
            workers: start(base, workers, Arc::clone(&ok)),
            ok,
        }
    }

    /// Waits until `n` runs were answered with a 200.
    pub async fn wait_for_answers(&self, n: usize) {
        crate::wait_until(&format!("{n} runs answered"), || async {
            self.ok.load(Ordering::Acquire) >= n
        })
        .await;
    }

    /// Waits for every worker to stop (once the server stops answering);
    /// what each request was told.
    pub async fn told(self) -> Vec<Told> {
        let mut told = Vec::new();
        for worker in self.workers {
            told.extend(worker.await.unwrap());
        }
        told
    }
}

/// Starts `workers` tasks submitting runs to `base` until each gets an
/// error; `ok` counts the 200s as they come.
fn start(
    base: &str,
    workers: usize,
    ok: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<Told>>> {
    (0..workers)
        .map(|w| {
            let base = base.to_owned();
            let ok = Arc::clone(&ok);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut told = Vec::new();
                for i in 0.. {
                    let run_id = uuid::Uuid::now_v7().to_string();
                    let body = match (w + i) % 3 {
                        0 => json!({"agent": "echo", "input": {"w": w, "i": i}, "run_id": run_id}),
                        1 => json!({"intent": "sms.send", "input": {"to": if i % 5 == 0 { "bad".to_owned() } else { format!("+1555{w:03}{i:04}") }, "body": "x"}, "run_id": run_id}),
                        _ => json!({"intent": "email.send", "input": {"to": "a@example.com", "subject": "s", "body": "b"}, "run_id": run_id}),
                    };
                    let response = client.post(format!("{base}/v1/runs")).json(&body).send().await;
                    let (status, run_status) = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            (Some(status), body["status"].as_str().map(str::to_owned))
                        }
                        Err(_) => (None, None),
                    };
                    let done = status != Some(200);
                    if !done {
                        ok.fetch_add(1, Ordering::AcqRel);
                    }
                    told.push(Told { run_id, status, run_status });
                    if done {
                        break;
                    }
                }
                told
            })
        })
        .collect()
}
