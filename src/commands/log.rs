//! `neonhub log repair`: cut the embedded log at the damage that keeps it
//! from opening, keeping the removed bytes in quarantine files.

use neonhub_events::EmbeddedLog;

use crate::config::DataDir;
use crate::error::Result;

pub(super) fn repair(data: &DataDir) -> Result<()> {
    let dir = data.log_dir();
    let repairs = EmbeddedLog::repair(&dir)?;
    if repairs.is_empty() {
        println!(
            "nothing to repair: the log at {} opens as it is",
            dir.display()
        );
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
    Ok(())
}
