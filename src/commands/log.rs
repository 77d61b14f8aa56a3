//! `neonhub log repair`: cut the embedded log at the damage that keeps it
//! from opening, keeping the removed bytes in quarantine files; then the
//! AgentRun table, derived from events that may no longer be in the log, is
//! moved aside (kept, never deleted) and rebuilt from the repaired log.
//! `neonhub log archive`: move old sealed segments into an archive.

use neonhub_events::EmbeddedLog;
use neonhub_projections::{RebuildOptions, rebuild};

use crate::cli::ArchiveArgs;
use crate::config::{DataDir, StoreConfig, format_time};
use crate::error::{Error, Result};
use crate::store::{Access, Store};

pub(super) async fn repair(data: &DataDir) -> Result<()> {
    let dir = data.log_dir();
    let repairs = EmbeddedLog::repair(&dir)?;
    if repairs.is_empty() {
        println!(
            "nothing to repair: the log at {} opens as it is",
            dir.display()
        );
        return Ok(());
    }
    for r in &repairs {
        println!(
            "cut {} at byte offset {} ({}); the removed bytes are kept in:",
            r.segment.display(),
            r.offset,
            r.reason
        );
        for q in &r.quarantined {
            println!("  {}", q.display());
        }
    }
    rebuild_table(data).await
}

/// Moves the AgentRun table aside (with its `-wal`/`-shm`) and rebuilds it
/// from the repaired log: it may hold rows of events that were cut.
async fn rebuild_table(data: &DataDir) -> Result<()> {
    let table = data.projection_path();
    if !table.exists() {
        return Ok(());
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let aside = table.with_extension(format!("sqlite.before-repair-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{}{suffix}", table.display());
        if std::path::Path::new(&from).exists() {
            let to = format!("{}{suffix}", aside.display());
            std::fs::rename(&from, &to).map_err(|source| Error::Io {
                context: format!("move {from} aside to {to}"),
                source,
            })?;
        }
    }
    let log = Store::open(&StoreConfig::Embedded, data, Access::Read)?.shared();
    let summary = rebuild(&log, &table, RebuildOptions::default()).await?;
    println!(
        "the AgentRun table was moved aside to {} and rebuilt from the repaired log: {} events \
         (checkpoint {})",
        aside.display(),
        summary.events,
        summary.checkpoint
    );
    Ok(())
}

/// `neonhub log archive`: moves the sealed segments older than `--before`
/// into `--to`; the table is not touched (archived runs keep their rows).
pub(super) fn archive(data: &DataDir, store: &StoreConfig, args: &ArchiveArgs) -> Result<()> {
    if !matches!(store, StoreConfig::Embedded) {
        return Err(Error::Usage(
            "log archive moves segments of the embedded log; EventStoreDB keeps its own \
             (use its scavenging and archiving)"
                .to_owned(),
        ));
    }
    let dir = data.log_dir();
    // Only events the AgentRun table has applied leave the log: archived
    // runs keep their rows.
    let table = data.projection_path();
    let upto = if table.exists() {
        neonhub_projections::RunQueries::open(&table)?.checkpoint()?
    } else {
        neonhub_events::Position(u64::MAX)
    };
    let started = std::time::Instant::now();
    let report = EmbeddedLog::archive(&dir, args.before, upto, &args.to)?;
    let hash: String = report
        .last_hash
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if report.segments == 0 {
        println!(
            "nothing archived (before {}): {}",
            format_time(args.before),
            report.stopped
        );
    } else {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "archived {} segment(s), {} events, {} bytes compressed to {} into {} in {secs:.2}s \
             ({:.0} MB/s); stopped there: {}",
            report.segments,
            report.events,
            report.bytes,
            report.compressed_bytes,
            report.archive.display(),
            report.bytes as f64 / 1e6 / secs.max(1e-9),
            report.stopped
        );
    }
    if report.first_live.0 > 0 {
        println!(
            "the live log starts at position {} and continues the archived chain from hash {hash}; \
             `neonhub audit verify --archive {}` re-checks the archive",
            report.first_live,
            report.archive.display()
        );
    }
    Ok(())
}
