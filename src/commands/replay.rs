//! `neonhub replay`: rebuild the AgentRun table from the log into a fresh
//! file, up to the end, a position or a time, with a progress bar.

use neonhub_projections::{AsOf, RebuildOptions, RunQueries, rebuild};

use super::table;
use crate::cli::ReplayArgs;
use crate::config::{DataDir, StoreConfig};
use crate::error::Result;
use crate::store::{Access, Store};

pub(super) async fn replay(data: DataDir, store: StoreConfig, args: ReplayArgs) -> Result<()> {
    let as_of = match (args.until_position, args.until_time) {
        (Some(position), _) => AsOf::Position(position),
        (None, Some(time)) => AsOf::Time(time),
        (None, None) => AsOf::End,
    };
    let out = args.out.unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        data.path().join(format!("replay-{stamp}.sqlite"))
    });
    let shared = Store::open(&store, &data, Access::Read)?.shared();
    let summary = rebuild(&shared, &out, RebuildOptions::default().as_of(as_of)).await?;
    println!(
        "rebuilt {} events into {} (checkpoint {}) in {:.2} s, {:.0} events/s",
        summary.events,
        summary.path.display(),
        summary.checkpoint,
        summary.elapsed.as_secs_f64(),
        summary.events_per_second()
    );
    let report = RunQueries::open(&summary.path)?.report(None, None)?;
    print!("{}", table::report_table(&report));
    Ok(())
}
