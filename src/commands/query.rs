//! `neonhub runs list|show|tree` and `neonhub report`: read the AgentRun
//! table. `runs list`, `runs tree` and `report` read the table alone, as it
//! stands (a running `neonhub serve` keeps it current), and never open the
//! log; `runs show` also reads the run's events, so it brings the table up
//! to date with the log first when no server holds it.

use neonhub_events::{Direction, ReadFrom, RecordedEvent, SharedStore};
use neonhub_projections::{
    AgentRunsProjection, MAX_PAGE_SIZE, ProjectionRunner, RunFilter, RunQueries, Timeline,
};
use serde_json::{Value, json};

use super::output::{self, RunsOutput};
use super::{print_json, table};
use crate::cli::{ListArgs, OutputFormat, ReportArgs, ShowArgs, TreeArgs};
use crate::config::{DataDir, StoreConfig, format_time};
use crate::error::{Error, Result};
use crate::store::{Access, Store};
use crate::view::{RunView, detail_json, event_json, report_json, timeline_json, tree_json};

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

/// Reads the table only: the log is not opened. Pages of at most
/// [`MAX_PAGE_SIZE`] runs are read and printed one after the other until
/// `--limit` runs (or, with `--all`, every match) are out, so memory stays
/// flat whatever the count.
pub(super) fn list(data: DataDir, args: ListArgs) -> Result<()> {
    let mut filter = RunFilter::new().started_between(args.since, args.until);
    if let Some(agent) = args.agent {
        filter = filter.target(agent);
    }
    if let Some(kind) = args.kind {
        filter = filter.kind(kind);
    }
    if let Some(status) = args.status {
        filter = filter.status(status);
    }
    if let Some(kind) = args.error_kind {
        filter = filter.error_kind(kind);
    }
    if let Some(correlation) = args.correlation {
        filter = filter.correlation_id(correlation);
    }
    if let Some(cursor) = args.cursor.filter(|c| c.sort() != args.sort) {
        return Err(Error::Usage(format!(
            "--cursor {cursor} pages through --sort {}: give the same --sort",
            cursor.sort().as_str()
        )));
    }
    let queries = queries(&data)?;
    let mut remaining = if args.all { u64::MAX } else { args.limit };
    let mut cursor = args.cursor;
    let mut out = RunsOutput::new(args.format);
    loop {
        let size = usize::try_from(remaining.min(MAX_PAGE_SIZE as u64)).unwrap_or(MAX_PAGE_SIZE);
        let page = queries.list_sorted(&filter, args.sort, cursor, size)?;
        out.page(&page.runs);
        remaining -= page.runs.len() as u64;
        cursor = page.next;
        if cursor.is_none() || remaining == 0 {
            break;
        }
    }
    out.finish(cursor);
    Ok(())
}

/// Reads the table only: the log is not opened.
pub(super) fn tree(data: DataDir, args: TreeArgs) -> Result<()> {
    let tree = queries(&data)?.tree(args.id)?.ok_or_else(|| {
        Error::Usage(format!(
            "no run and no correlation {} in the AgentRun table",
            args.id
        ))
    })?;
    match args.format {
        OutputFormat::Json => print_json(&tree_json(&tree)),
        OutputFormat::Jsonl => output::print_jsonl(tree.runs.iter().map(RunView::from)),
        OutputFormat::Csv => output::runs_csv(&tree.runs),
        OutputFormat::Table => {
            println!("correlation {}", tree.correlation_id);
            print!("{}", table::tree_table(&tree.runs));
        }
    }
    if tree.truncated && args.format != OutputFormat::Json {
        eprintln!(
            "note: only the first {} runs of correlation {} are shown (the tree is bounded)",
            tree.runs.len(),
            tree.correlation_id
        );
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
        OutputFormat::Json | OutputFormat::Jsonl => {
            let mut value = detail_json(&detail);
            value["events"] = Value::Array(events.iter().map(|e| event_json(&codec, e)).collect());
            if let Some(archived) = &archived {
                value["events_archived"] = Value::String(archived.clone());
            }
            if args.format == OutputFormat::Json {
                print_json(&value);
            } else {
                println!("{value}");
            }
        }
        OutputFormat::Csv => {
            let mut runs = vec![detail.run.clone()];
            runs.extend(detail.children.iter().cloned());
            output::runs_csv(&runs);
        }
        OutputFormat::Table => {
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
    if let Some(by) = args.by {
        let mut query = Timeline::window(by, args.since, args.until);
        if let Some(agent) = args.agent {
            query = query.target(agent);
        }
        if let Some(kind) = args.kind {
            query = query.kind(kind);
        }
        // The window's bound is the caller's to fix: a usage error.
        query.buckets().map_err(|e| Error::Usage(e.to_string()))?;
        let buckets = queries(&data)?.timeline(&query)?;
        match args.format {
            OutputFormat::Json => {
                print_json(&timeline_json(by, &buckets));
            }
            OutputFormat::Jsonl => output::buckets_jsonl(&buckets),
            OutputFormat::Csv => output::buckets_csv(&buckets),
            OutputFormat::Table => print!("{}", table::timeline_table(&buckets)),
        }
        return Ok(());
    }
    let reports = queries(&data)?.report(args.since, args.until)?;
    match args.format {
        OutputFormat::Json => print_json(&json!({
            "agents": reports.iter().map(report_json).collect::<Vec<_>>()
        })),
        OutputFormat::Jsonl => output::reports_jsonl(&reports),
        OutputFormat::Csv => output::reports_csv(&reports),
        OutputFormat::Table => print!("{}", table::report_table(&reports)),
    }
    Ok(())
}
