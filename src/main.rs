//! The `neonhub` command line.
//!
//! Until the service lands (the service issue), `demo` records a small mixed
//! workload of run events in the embedded log and verifies it, and `verify`
//! checks the log's hash chain.

use std::path::PathBuf;

use anyhow::{Context, bail};
use neonhub_events::{
    Codec, EmbeddedLog, ErrorKind, EventStore, ExpectedRevision, LogOptions, Metadata, RunError,
    RunEvent, RunFailed, RunId, RunKind, RunStarted, RunSucceeded, Timestamp,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_dir = std::env::var_os("NEONHUB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"));
    let log_dir = data_dir.join("log");
    match args.first().map(String::as_str) {
        Some("demo") => demo(&log_dir).await,
        Some("verify") => {
            let log = EmbeddedLog::open(&log_dir, LogOptions::default())?;
            let report = log.verify()?;
            println!(
                "ok: {} events, head position {}, head hash {}",
                report.events,
                report.head,
                report.head_hash_hex()
            );
            Ok(())
        }
        _ => bail!("usage: neonhub demo | neonhub verify   (data in $NEONHUB_DATA_DIR, default ./data)"),
    }
}

async fn demo(log_dir: &std::path::Path) -> anyhow::Result<()> {
    let log = EmbeddedLog::open(log_dir, LogOptions::default())
        .with_context(|| format!("opening the event log in {}", log_dir.display()))?;
    let codec = Codec::new();
    let agents = [("content", "content.generate"), ("sms", "sms.send"), ("echo", "echo")];
    let (mut ok, mut failed) = (0, 0);
    for i in 0..30u32 {
        let (agent, intent) = agents[i as usize % agents.len()];
        let run_id = RunId::new();
        let stream = run_id.stream();
        let meta = Metadata {
            correlation_id: Some(*run_id.as_uuid()),
            causation_id: None,
        };
        let started = RunEvent::Started(RunStarted {
            run_id,
            kind: RunKind::Agent,
            target: agent.to_string(),
            operation: "run".to_string(),
            intent: Some(intent.to_string()),
            input: serde_json::json!({ "n": i }),
            attempt: 1,
            parent_run_id: None,
            correlation_id: *run_id.as_uuid(),
            started_at: Timestamp::now(),
        });
        let r = log
            .append(&stream, ExpectedRevision::NoStream, vec![codec.encode(&started, meta)?])
            .await?;
        let outcome = if agent == "sms" && i % 2 == 0 {
            failed += 1;
            RunEvent::Failed(RunFailed {
                run_id,
                attempt: 1,
                error: RunError::new(ErrorKind::Connector, "invalid phone number"),
                will_retry: false,
                duration_micros: 900,
                finished_at: Timestamp::now(),
            })
        } else {
            ok += 1;
            RunEvent::Succeeded(RunSucceeded {
                run_id,
                attempt: 1,
                output: serde_json::json!({ "echo": i }),
                duration_micros: 1200,
                finished_at: Timestamp::now(),
            })
        };
        log.append(
            &stream,
            ExpectedRevision::Exact(r.next_expected),
            vec![codec.encode(&outcome, meta)?],
        )
        .await?;
    }
    let report = log.verify()?;
    println!("recorded 30 runs ({ok} succeeded, {failed} failed) as durable events");
    println!(
        "log {}: {} events, {} streams, head hash {}",
        log_dir.display(),
        report.events,
        log.stream_count(),
        report.head_hash_hex()
    );
    Ok(())
}
