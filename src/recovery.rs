//! Start-up recovery without a full scan: the runs in flight are taken from
//! the AgentRun table as of its checkpoint, and only their streams and the
//! log after the checkpoint are read ([`neonhub_actors::UnfinishedIndex::seeded`]).
//! Without a table it can trust, recovery reads the whole log, and says why.

use std::path::Path;

use neonhub_actors::{RecoverySeed, StepDirectory, UnfinishedIndex};
use neonhub_events::{Codec, EventStore, Position, RunId};
use neonhub_projections::RunQueries;

use crate::error::Result;

/// Where start-up recovery found the runs in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoverySource {
    /// The AgentRun table: its runs in flight as of `checkpoint`, then the
    /// log from there.
    Table {
        /// The table's checkpoint.
        checkpoint: Position,
        /// The runs (agent runs and steps) it held unfinished.
        in_flight: usize,
    },
    /// A scan of the whole log, because the table could not be used.
    FullScan {
        /// Why (no table, a table ahead of the log, one that cannot be
        /// read or does not match the log).
        why: String,
    },
}

/// The AgentRun table as a [`StepDirectory`]: a run's steps are the rows
/// naming it as their parent.
struct TableSteps(RunQueries);

impl StepDirectory for TableSteps {
    fn steps_of(&mut self, runs: &[RunId]) -> std::result::Result<Vec<(RunId, RunId)>, String> {
        self.0.steps_of(runs).map_err(|e| e.to_string())
    }
}

/// The unfinished runs of `store` (an index a node can keep current), found
/// from the AgentRun table at `table` when it can be trusted, else by a scan
/// of the whole log; both give the same runs. Logs which it was and why.
///
/// The table is not used when it is missing, cannot be read, or is ahead of
/// the log (a log restored from an older copy: as the projection does,
/// [`neonhub_projections::Error::AheadOfLog`], it is not trusted), or when
/// the log does not fit it.
///
/// # Errors
/// The store's, or a run event that does not decode or fit its run (from
/// the full scan).
pub async fn find_in_flight(
    store: &dyn EventStore,
    codec: &Codec,
    table: &Path,
) -> Result<(UnfinishedIndex, RecoverySource)> {
    let missing = !table.exists();
    let why = match seed(store, table).await {
        Ok(seed) => {
            let (checkpoint, in_flight) = (seed.from(), seed.runs().len());
            match UnfinishedIndex::seeded(store, codec, seed).await {
                Ok(index) => {
                    tracing::info!(
                        %checkpoint,
                        in_flight,
                        events_read = index.scanned(),
                        "start-up recovery took the runs in flight from the AgentRun table"
                    );
                    return Ok((
                        index,
                        RecoverySource::Table {
                            checkpoint,
                            in_flight,
                        },
                    ));
                }
                Err(e) => format!(
                    "the log does not fit the AgentRun table at {}: {e}",
                    table.display()
                ),
            }
        }
        Err(why) => why,
    };
    if missing {
        // A new data directory, or a table moved aside: nothing is wrong.
        tracing::info!("start-up recovery reads the whole log: {why}");
    } else {
        tracing::warn!("start-up recovery reads the whole log: {why}");
    }
    let mut index = UnfinishedIndex::default();
    index.catch_up(store, codec).await?;
    Ok((index, RecoverySource::FullScan { why }))
}

/// The table's runs in flight and checkpoint, or why they cannot be used.
async fn seed(store: &dyn EventStore, table: &Path) -> std::result::Result<RecoverySeed, String> {
    if !table.exists() {
        return Err(format!(
            "there is no AgentRun table at {} (it is built now)",
            table.display()
        ));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        format!(
            "the AgentRun table at {} cannot be read: {e}",
            table.display()
        )
    };
    let mut queries = RunQueries::open(table).map_err(|e| unreadable(&e))?;
    let (checkpoint, open) = queries.in_flight().map_err(|e| unreadable(&e))?;
    let head = store
        .head()
        .await
        .map_err(|e| format!("the log's head cannot be read: {e}"))?;
    if checkpoint > head {
        let ahead = neonhub_projections::Error::AheadOfLog { checkpoint, head };
        return Err(format!("{ahead} ({})", table.display()));
    }
    Ok(RecoverySeed::new(
        checkpoint,
        open,
        Box::new(TableSteps(queries)),
    ))
}
