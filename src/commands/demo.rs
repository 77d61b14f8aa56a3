//! `neonhub demo`: a realistic mixed workload through the built-in agents on
//! mock connectors (content, email, sms with some invalid numbers, slack,
//! echo), then the latest audit rows, the per-agent report and where the
//! data lives.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use neonhub_actors::SubmitRun;
use neonhub_events::RunKind;
use neonhub_projections::{RunFilter, RunQueries};
use serde_json::json;

use super::table;
use crate::cli::DemoArgs;
use crate::config::{DataDir, StoreConfig};
use crate::error::{Error, Result};
use crate::service::{Service, ServiceOptions};

/// Runs submitted at once.
const CONCURRENCY: usize = 32;

const TOPICS: [&str; 5] = [
    "the spring sale",
    "our new mobile app",
    "faster checkout",
    "the loyalty programme",
    "free shipping week",
];
const AUDIENCES: [&str; 3] = ["new customers", "returning shoppers", "the sales team"];
const TONES: [&str; 4] = ["friendly", "professional", "playful", "urgent"];

/// The `i`-th run of the workload. About one in six fails on purpose:
/// SMS to numbers that are not E.164, and content in a tone nobody knows.
pub(crate) fn workload(i: usize) -> SubmitRun {
    let topic = TOPICS[i % TOPICS.len()];
    let audience = AUDIENCES[i % AUDIENCES.len()];
    let tone = TONES[(i / 3) % TONES.len()];
    match i % 10 {
        0 | 1 => {
            let tone = if i % 20 == 1 { "sarcastic" } else { tone };
            SubmitRun::intent(
                "content.generate",
                json!({"topic": topic, "audience": audience, "tone": tone, "channel": "blog"}),
            )
        }
        2 | 3 => SubmitRun::intent(
            "email.send",
            json!({"to": format!("customer{i}@example.com"), "topic": topic, "audience": audience, "tone": tone}),
        ),
        4..=6 => {
            let to = if i.is_multiple_of(3) {
                format!("555-{:04}", i % 10_000)
            } else {
                format!("+1555{:07}", i % 10_000_000)
            };
            SubmitRun::intent("sms.send", json!({"to": to, "topic": topic, "tone": tone}))
        }
        7 | 8 => SubmitRun::intent(
            "slack.notify",
            json!({"channel": "#launches", "topic": topic, "audience": audience}),
        ),
        _ => SubmitRun::agent("echo", json!({"ping": i})),
    }
}

pub(super) async fn demo(data: DataDir, store: StoreConfig, args: DemoArgs) -> Result<()> {
    if args.runs == 0 {
        return Err(Error::Usage("--runs must be at least 1".to_owned()));
    }
    let store_name = match &store {
        StoreConfig::EventStoreDb { url } => Some(url.to_string()),
        StoreConfig::Embedded => None,
    };
    let service = Service::start(ServiceOptions {
        store,
        ..ServiceOptions::new(data)
    })
    .await?;
    submit_workload(&service, args.runs).await?;
    let checkpoint = service.caught_up().await?;
    print_audit_table(&service, args.rows)?;
    let data_path = service.data().display_path();
    let head = service.store().head().await?;
    service.shutdown(Duration::from_secs(30)).await?;
    println!("\nWhere the data lives:");
    match store_name {
        Some(url) => println!("  events (source of truth)     EventStoreDB at {url}"),
        None => println!(
            "  event log (source of truth)  {}  ({} events)",
            data_path.join(crate::config::LOG_DIR).display(),
            head.0
        ),
    }
    println!(
        "  AgentRun table (SQLite)      {}  (checkpoint {})",
        data_path.join(crate::config::PROJECTION_FILE).display(),
        checkpoint
    );
    println!(
        "\nNext: neonhub runs list --status failed | neonhub report | neonhub audit verify | neonhub serve"
    );
    Ok(())
}

/// Submits `runs` runs of the workload, [`CONCURRENCY`] at a time, and
/// prints how many succeeded and failed.
async fn submit_workload(service: &Service, runs: usize) -> Result<()> {
    println!(
        "neonhub demo: {runs} runs through the built-in agents on mock connectors, {CONCURRENCY} at a time"
    );
    let began = Instant::now();
    let results: Vec<_> = futures_util::stream::iter((0..runs).map(workload))
        .map(|run| service.submit(run))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = began.elapsed();
    let (mut succeeded, mut failed) = (0usize, 0usize);
    for result in results {
        match result? {
            outcome if outcome.is_success() => succeeded += 1,
            _ => failed += 1,
        }
    }
    println!(
        "  {runs} runs in {:.2} s: {succeeded} succeeded, {failed} failed (every event durable before its reply)",
        elapsed.as_secs_f64()
    );
    let (limited, waited, total) = neonhub_actors::rate_limit_waits();
    if waited == 0 {
        println!(
            "  rate limits: none of {limited} connector calls waited (the mock connectors have no \
             limit unless one is set; live ones wait for their vendor's, see `serve --help`)\n"
        );
    } else {
        println!(
            "  rate limits: {waited} of {limited} connector calls waited for their turn, {:.2} s in all \
             (none failed for it: a call over a limit waits)\n",
            total.as_secs_f64()
        );
    }
    Ok(())
}

/// Prints the latest `rows` agent runs of the AgentRun table, the latest
/// failure of each kind for each agent, and the per-target report.
fn print_audit_table(service: &Service, rows: usize) -> Result<()> {
    let queries = RunQueries::open(service.data().projection_path())?;
    let latest = queries.list(
        &RunFilter::new().kind(RunKind::Agent),
        None,
        rows.clamp(1, neonhub_projections::MAX_PAGE_SIZE),
    )?;
    let failures = queries.list(
        &RunFilter::new()
            .kind(RunKind::Agent)
            .status(neonhub_projections::RunStatus::Failed),
        None,
        neonhub_projections::MAX_PAGE_SIZE,
    )?;
    // The latest failure of each kind for each agent.
    let mut seen = std::collections::HashSet::new();
    let failures: Vec<_> = failures
        .runs
        .into_iter()
        .filter(|r| seen.insert((r.target.clone(), r.error.as_ref().map(|e| e.kind))))
        .collect();
    println!("Latest agent runs in the AgentRun audit table (newest first):");
    print!("{}", table::runs_table(&latest.runs));
    if !failures.is_empty() {
        println!("\nLatest failures (one per agent and kind of error):");
        print!("{}", table::runs_table(&failures));
    }
    println!("\nPer-agent and per-connector report (all runs in the table):");
    print!("{}", table::report_table(&queries.report(None, None)?));
    Ok(())
}
