//! `neonhub run AGENT --input JSON`: one run on the embedded service, then
//! its outcome. Connectors are mock unless configured live, as for `serve`.

use std::time::Duration;

use neonhub_actors::{ConnectorsConfig, SubmitRun};

use super::{print_json, table};
use crate::cli::{Format, RunArgs};
use crate::config::{DataDir, StoreConfig};
use crate::error::{Error, Result};
use crate::service::{Service, ServiceOptions};
use crate::view::detail_json;

pub(super) async fn run(
    data: DataDir,
    store: StoreConfig,
    connectors: ConnectorsConfig,
    args: RunArgs,
) -> Result<()> {
    let mut submit = if args.intent {
        SubmitRun::intent(&args.agent, args.input)
    } else {
        SubmitRun::agent(&args.agent, args.input)
    };
    if let Some(run_id) = args.run_id {
        submit = submit.with_run_id(run_id);
    }
    let service = Service::start(ServiceOptions {
        store,
        connectors,
        rate_limits: args.rate_limits.config(),
        ..ServiceOptions::new(data)
    })
    .await?;
    let outcome = service.submit(submit).await;
    let detail = match &outcome {
        Ok(outcome) => {
            service.caught_up().await?;
            let path = service.data().projection_path();
            neonhub_projections::RunQueries::open(path)?.get(outcome.run_id)?
        }
        Err(_) => None,
    };
    service.shutdown(Duration::from_secs(30)).await?;
    let outcome = outcome?;
    match (args.format, detail) {
        (Format::Json, Some(detail)) => print_json(&detail_json(&detail)),
        (Format::Table, Some(detail)) => {
            print!("{}", table::runs_table(std::slice::from_ref(&detail.run)));
            if !detail.children.is_empty() {
                println!("\nconnector calls:");
                print!("{}", table::runs_table(&detail.children));
            }
        }
        (_, None) => {
            return Err(Error::Service(format!(
                "run {} finished but is not in the AgentRun table",
                outcome.run_id
            )));
        }
    }
    match &outcome.result {
        Ok(output) => {
            if args.format == Format::Table {
                println!(
                    "\nsucceeded after {} attempt(s): {output}",
                    outcome.attempts
                );
            }
            Ok(())
        }
        Err(e) => Err(Error::Service(format!(
            "run {} failed: {e}",
            outcome.run_id
        ))),
    }
}
