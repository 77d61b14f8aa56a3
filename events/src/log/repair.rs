//! `EmbeddedLog::repair`: what an operator runs when the log refuses to open
//! on corruption. It cuts the log at the damage and keeps every byte it
//! removes in quarantine files beside the segments; it never deletes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::embedded::lock_dir;
use super::format::HEADER_LEN;
use super::io::{LogFs, OpenMode, StdFs};
use super::recovery::{self, Access};
use super::segidx;
use crate::error::{Error, Result};

/// What [`crate::EmbeddedLog::repair`] cut.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repair {
    /// The segment the damage was found in.
    pub segment: PathBuf,
    /// Where the log was cut in it.
    pub offset: u64,
    /// What was wrong there.
    pub reason: String,
    /// The files now holding every byte removed from the log (the cut tail
    /// of `segment`, and whole later segments renamed).
    pub quarantined: Vec<PathBuf>,
}

/// Cuts the log in `dir` at each damage an open finds, until it opens.
pub(crate) fn repair(dir: &Path) -> Result<Vec<Repair>> {
    let fs: Arc<dyn LogFs> = Arc::new(StdFs);
    if !fs.exists(dir) {
        return Err(Error::NotALog {
            dir: dir.to_path_buf(),
        });
    }
    let _locks = lock_dir(dir)?;
    let mut repairs = Vec::new();
    // Each round removes at least one segment's tail, so this ends.
    let rounds = recovery::list_segments(fs.as_ref(), dir, Access::ReadOnly)?.len() + 1;
    for _ in 0..rounds {
        let (segment, offset, reason) = match recovery::recover(&fs, dir, Access::Scan) {
            Ok(_) => return Ok(repairs),
            Err(Error::Corruption {
                segment,
                offset,
                reason,
            }) => (segment, offset, reason),
            Err(Error::ChainBroken {
                segment,
                offset,
                position,
            }) => (
                segment,
                offset,
                format!("hash chain broken at position {position}"),
            ),
            Err(Error::BadSegment { path, reason }) => (path, 0, reason),
            Err(e) => return Err(e),
        };
        let quarantined = cut_at(fs.as_ref(), dir, &segment, offset, &reason)?;
        tracing::warn!(
            segment = %segment.display(),
            offset,
            reason,
            "repair: cut the log at damage; the removed bytes are in quarantine files"
        );
        repairs.push(Repair {
            segment,
            offset,
            reason,
            quarantined,
        });
    }
    Err(Error::InvalidInput(format!(
        "the log at {} still does not open after {rounds} repairs",
        dir.display()
    )))
}

/// Quarantines `segment` from `offset` on, and every later segment whole.
fn cut_at(
    fs: &dyn LogFs,
    dir: &Path,
    segment: &Path,
    offset: u64,
    reason: &str,
) -> Result<Vec<PathBuf>> {
    let mut quarantined = Vec::new();
    let later: Vec<PathBuf> = recovery::list_segments(fs, dir, Access::ReadOnly)?
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.as_path() > segment)
        .collect();
    if offset <= HEADER_LEN as u64 {
        quarantined.push(rename_away(fs, dir, segment)?);
    } else {
        let len = fs
            .open(segment, OpenMode::Read)
            .and_then(|f| f.len())
            .map_err(|e| Error::io(format!("stat {}", segment.display()), e))?;
        if offset < len {
            quarantined.push(recovery::cut(fs, dir, segment, offset, len, reason)?);
        }
    }
    for path in later {
        quarantined.push(rename_away(fs, dir, &path)?);
        remove_index(fs, &path)?;
    }
    // The cut segment's index file no longer describes it (the next open
    // would find that out and rebuild it; removing it says so now).
    remove_index(fs, segment)?;
    Ok(quarantined)
}

/// Removes the index file of `segment`, if any: it is derived from the
/// segment and rebuilt when missing.
fn remove_index(fs: &dyn LogFs, segment: &Path) -> Result<()> {
    let idx = segidx::index_path(segment);
    if fs.exists(&idx) {
        fs.remove_file(&idx)
            .map_err(|e| Error::io(format!("remove {}", idx.display()), e))?;
    }
    Ok(())
}

/// Renames a whole segment to `<name>.quarantine-000000000000` and syncs
/// the directory.
fn rename_away(fs: &dyn LogFs, dir: &Path, path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    let to = dir.join(format!("{name}.quarantine-{:012}", 0));
    fs.rename(path, &to)
        .map_err(|e| Error::io(format!("rename {}", path.display()), e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("sync directory {}", dir.display()), e))?;
    Ok(to)
}
