//! A bounded cache of read handles to segment files: a log of thousands of
//! segments keeps at most [`MAX_OPEN`] of them open, the most recently read.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::io::{LogFile, LogFs, OpenMode};
use crate::error::{Error, Result};

/// Most segment files held open for reading at once.
pub(crate) const MAX_OPEN: usize = 256;

struct Entry {
    path: Arc<Path>,
    file: Arc<dyn LogFile>,
    used: u64,
}

#[derive(Default)]
struct Open {
    entries: Vec<Entry>,
    clock: u64,
}

/// Read handles by segment path, least recently used evicted first.
pub(crate) struct Handles {
    fs: Arc<dyn LogFs>,
    open: Mutex<Open>,
    cap: usize,
}

impl Handles {
    pub(crate) fn new(fs: Arc<dyn LogFs>, cap: usize) -> Self {
        Self {
            fs,
            open: Mutex::new(Open::default()),
            cap: cap.max(1),
        }
    }

    /// Closes the handle to `path`, if open (its file was archived).
    pub(crate) fn forget(&self, path: &Path) {
        let mut open = self.open.lock().expect("handle cache lock");
        open.entries.retain(|e| &*e.path != path);
    }

    /// A read handle to the segment at `path`, opened if not cached.
    pub(crate) fn get(&self, path: &Arc<Path>) -> Result<Arc<dyn LogFile>> {
        let mut open = self.open.lock().expect("handle cache lock");
        open.clock += 1;
        let now = open.clock;
        if let Some(e) = open
            .entries
            .iter_mut()
            .find(|e| Arc::ptr_eq(&e.path, path) || e.path == *path)
        {
            e.used = now;
            return Ok(e.file.clone());
        }
        let file = self
            .fs
            .open(path, OpenMode::Read)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        if open.entries.len() >= self.cap
            && let Some(oldest) = (0..open.entries.len()).min_by_key(|&i| open.entries[i].used)
        {
            open.entries.swap_remove(oldest);
        }
        open.entries.push(Entry {
            path: path.clone(),
            file: file.clone(),
            used: now,
        });
        Ok(file)
    }
}
