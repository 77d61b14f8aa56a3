//! `neonhub audit verify`: the hash chain of the whole log, every event
//! decoding with this build's codec (upcasters included), and the AgentRun
//! table matching the log. On EventStoreDB there is no hash chain (it is a
//! property of the embedded log): the other two checks are made.

use neonhub_events::{Codec, Position};
use neonhub_projections::{
    AgentRunsProjection, Projection, ProjectionRunner, verify as verify_table,
};

use crate::config::{DataDir, StoreConfig};
use crate::error::{Error, Result};
use crate::store::{Access, Store};

/// Events decoded per read.
const PAGE: usize = 4096;

pub(super) async fn verify(data: DataDir, store: StoreConfig) -> Result<()> {
    // The writer's access: the table is caught up before it is compared.
    let opened = Store::open(&store, &data, Access::Write)?;
    // 1. The embedded log's hash chain (EventStoreDB has none).
    let chain = match &opened {
        Store::Embedded(log) => Some(verify_chain(log)?),
        Store::EventStoreDb { .. } => None,
    };
    let log = opened.shared();
    // 2. Every run event decodes with this build.
    let codec = Codec::new();
    let mut from = Position::START;
    let mut run_events = 0u64;
    loop {
        let page = log.read_all(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for event in page.iter().filter(|e| e.stream.run_id().is_some()) {
            codec.decode(event).map_err(|e| Error::AuditFailed {
                position: event.position,
                reason: format!("does not decode with this build: {e}"),
            })?;
            run_events += 1;
        }
    }
    // 3. The table matches the log (caught up first: it is derived data).
    let path = data.projection_path();
    let projection = AgentRunsProjection::open(&path)?;
    let before = projection.checkpoint();
    let mut runner = ProjectionRunner::new(log.clone(), projection);
    runner.catch_up().await.map_err(|e| match e {
        neonhub_projections::Error::Apply {
            position, reason, ..
        } => Error::AuditFailed {
            position,
            reason: format!("the AgentRun table cannot apply this event: {reason}"),
        },
        other => other.into(),
    })?;
    let after = runner.projection().checkpoint();
    drop(runner);
    if after > before {
        eprintln!("brought the AgentRun table from position {before} to {after} before comparing");
    }
    let table = verify_table(&*log, &path).await?;
    if table.is_ahead() {
        return Err(Error::Audit(format!(
            "the AgentRun table's checkpoint {} is past the log's head {}: the table saw events \
             this log does not hold (an older log restored, or its tail cut); if the log is the \
             one to keep, stop neonhub serve, move {} aside and rebuild it with \
             `neonhub replay --out {}`",
            table.checkpoint,
            table.head,
            path.display(),
            path.display()
        )));
    }
    if !table.matches() {
        for mismatch in &table.mismatches {
            eprintln!("mismatch: {mismatch}");
        }
        let unlisted = table.mismatch_count - table.mismatches.len() as u64;
        if unlisted > 0 {
            eprintln!("... and {unlisted} more mismatches not listed");
        }
        let what = format!(
            "the AgentRun table does not match the log: {} mismatch(es), listed above \
             (rebuild the table with `neonhub replay`; never edit the log)",
            table.mismatch_count
        );
        return Err(match table.first_bad_position {
            Some(position) => Error::AuditFailed {
                position,
                reason: what,
            },
            None => Error::Audit(what),
        });
    }
    match chain {
        Some(chain) => println!(
            "ok: {} events, head position {}, head hash {} ({run_events} run events decode, {} runs and {} metric series match the AgentRun table)",
            chain.events,
            chain.head,
            chain.head_hash_hex(),
            table.rows,
            table.series
        ),
        None => println!(
            "ok (eventstoredb: no hash chain, that is the embedded log's; checked instead: \
             {run_events} run events decode with this build, {} runs match the AgentRun table, \
             head position {})",
            table.rows,
            log.head().await?
        ),
    }
    Ok(())
}

/// 1. The hash chain and every record's checksum.
fn verify_chain(log: &neonhub_events::EmbeddedLog) -> Result<neonhub_events::VerifyReport> {
    match log.verify() {
        Ok(report) => Ok(report),
        Err(neonhub_events::Error::ChainBroken {
            position,
            segment,
            offset,
        }) => Err(Error::AuditFailed {
            position,
            reason: format!(
                "hash chain broken ({} at byte offset {offset})",
                segment.display()
            ),
        }),
        Err(e) => Err(e.into()),
    }
}
