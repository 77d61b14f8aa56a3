//! `neonhub runs list|show` and `neonhub report`: read the AgentRun table.
//! `runs list` and `report` read the table alone, as it stands (a running
//! `neonhub serve` keeps it current), and never open the log; `runs show`
//! also reads the run's events, so it brings the table up to date with the
//! log first when no server holds it.

use neonhub_events::{Direction, ReadFrom, RecordedEvent, SharedStore};
use neonhub_projections::{AgentRunsProjection, ProjectionRunner, RunFilter, RunQueries};
use serde_json::{Value, json};

use super::{print_json, table};
use crate::cli::{Format, ListArgs, ReportArgs, ShowArgs};
use crate::config::{DataDir, StoreConfig, format_time};
use crate::error::{Error, Result};
use crate::store::{Access, Store};
use crate::view::{detail_json, event_json, report_json, run_json};

/// Opens the store and catches the table up, unless a running `neonhub
/// serve` holds the data directory (it keeps the table current itself):
/// then `None`. The embedded log is opened read-only: reading never cuts or
/// writes it.
async fn refresh(data: &DataDir, store: &StoreConfig) -> Result<Option<SharedStore>> {
    let opened = match store {
        StoreConfig::Embedded => {
            if crate::store::embedded_in_use(data)? {
                return Ok(None);
            }
            Store::open(store, data, Access::Read)?
        }
        _ => match Store::open_unless_in_use(store, data)? {
            Some(opened) => opened,
            None => return Ok(None),
        },
    };
    let log = opened.shared();
    let projection = AgentRunsProjection::open(data.projection_path())?;
    let mut runner = ProjectionRunner::new(log.clone(), projection);
    runner.catch_up().await?;
    Ok(Some(log))
}

/// Opens the table for queries; without one, says how to build it.
fn queries(data: &DataDir) -> Result<RunQueries> {
    let path = data.projection_path();
    if !path.exists() {
        return Err(Error::Usage(format!(
            "no AgentRun table at {path}: `neonhub serve` (or `neonhub run`, `neonhub demo`) \
             builds it from the log; without starting the service, `neonhub replay --out {path}` \
             does",
            path = path.display()
        )));
    }
    Ok(RunQueries::open(path)?)
}

/// Reads the table only: the log is not opened.
pub(super) fn list(data: DataDir, args: ListArgs) -> Result<()> {
    let mut filter = RunFilter::new();
    if let Some(agent) = args.agent {
        filter = filter.target(agent);
    }
    if let Some(status) = args.status {
        filter = filter.status(status);
    }
    if let Some(since) = args.since {
        filter = filter.started_between(Some(since), None);
    }
    if args.limit == 0 || args.limit > neonhub_projections::MAX_PAGE_SIZE {
        return Err(Error::Usage(format!(
            "--limit must be 1 to {}",
            neonhub_projections::MAX_PAGE_SIZE
        )));
    }
    let page = queries(&data)?.list(&filter, None, args.limit)?;
    if page.next.is_some() && page.runs.len() < args.limit {
        eprintln!(
            "note: {} runs shown, fewer than --limit {}: a page holds at most 4 MiB of run \
             text, and more runs match",
            page.runs.len(),
            args.limit
        );
    }
    match args.format {
        Format::Json => print_json(&json!({
            "runs": page.runs.iter().map(run_json).collect::<Vec<_>>(),
            "next_cursor": page.next.map(|c| c.to_string()),
        })),
        Format::Table => print!("{}", table::runs_table(&page.runs)),
    }
    Ok(())
}

pub(super) async fn show(data: DataDir, store: StoreConfig, args: ShowArgs) -> Result<()> {
    let run_id = args.run_id;
    let log = match refresh(&data, &store).await? {
        Some(log) => log,
        // `neonhub serve` holds the log and keeps the table current: read
        // the run's events from a snapshot beside it.
        None => Store::open(&store, &data, Access::Read)?.shared(),
    };
    let detail = queries(&data)?
        .get(run_id)?
        .ok_or_else(|| Error::Usage(format!("no run {run_id} in the AgentRun table")))?;
    let (events, archived) = run_events(&*log, run_id).await?;
    let codec = neonhub_events::Codec::new();
    match args.format {
        Format::Json => {
            let mut value = detail_json(&detail);
            value["events"] = Value::Array(events.iter().map(|e| event_json(&codec, e)).collect());
            if let Some(archived) = &archived {
                value["events_archived"] = Value::String(archived.clone());
            }
            print_json(&value);
        }
        Format::Table => {
            print!("{}", table::runs_table(std::slice::from_ref(&detail.run)));
            println!("\ninput:  {}", detail.run.input);
            if let Some(output) = &detail.run.output {
                println!("output: {output}");
            }
            if let Some(error) = &detail.run.error {
                println!("error:  {error}");
            }
            if !detail.children.is_empty() {
                println!("\nconnector calls:");
                print!("{}", table::runs_table(&detail.children));
            }
            let mut t = table::Table::new(&["POSITION", "REVISION", "TYPE", "RECORDED"]);
            for e in &events {
                t.row(vec![
                    e.position.to_string(),
                    e.revision.to_string(),
                    e.event_type.clone(),
                    format_time(e.recorded_at),
                ]);
            }
            println!("\nevents:");
            match &archived {
                Some(archived) => println!("{archived}"),
                None => print!("{}", t.render()),
            }
        }
    }
    Ok(())
}

/// The events of a run; none, and where they went, when they were archived
/// (`neonhub log archive`: the run keeps its row).
async fn run_events(
    log: &dyn neonhub_events::EventStore,
    run_id: neonhub_events::RunId,
) -> Result<(Vec<RecordedEvent>, Option<String>)> {
    match log
        .read_stream(
            &run_id.stream(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await
    {
        Ok(events) => Ok((events, None)),
        Err(e @ neonhub_events::Error::Archived { .. }) => Ok((Vec::new(), Some(e.to_string()))),
        Err(e) => Err(e.into()),
    }
}

/// Reads the table only: the log is not opened.
pub(super) fn report(data: DataDir, args: ReportArgs) -> Result<()> {
    let reports = queries(&data)?.report(args.since, None)?;
    match args.format {
        Format::Json => print_json(&json!({
            "agents": reports.iter().map(report_json).collect::<Vec<_>>()
        })),
        Format::Table => print!("{}", table::report_table(&reports)),
    }
    Ok(())
}
