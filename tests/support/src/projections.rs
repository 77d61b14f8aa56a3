//! A test log for the projection scenarios (an embedded log in a temp dir,
//! or the in-memory store), filled with synthetic runs of every shape, and
//! reading a projected table back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use neonhub_events::{Durability, EmbeddedLog, LogOptions, RunEvent, SharedStore};
use neonhub_projections::fixture::{Appender, FixtureSpec, script};
use neonhub_projections::{AgentRun, AgentRunsProjection, RunQueries};

use crate::MemoryStore;

/// A store to project, and a temp dir for the tables built from it.
pub struct TestLog {
    /// The temp dir: the log (`log/`, when on disk) and the tables.
    pub dir: tempfile::TempDir,
    /// The store.
    pub store: SharedStore,
    /// Appends fixture events at the revisions their runs are at.
    pub appender: Appender,
}

impl TestLog {
    /// An embedded log (buffered) in `dir/log`.
    pub fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("log"));
        Self::with_store(dir, store)
    }

    /// An in-memory store; the tables still go in a temp dir.
    pub fn in_memory() -> Self {
        Self::with_store(tempfile::tempdir().unwrap(), Arc::new(MemoryStore::new()))
    }

    fn with_store(dir: tempfile::TempDir, store: SharedStore) -> Self {
        Self {
            dir,
            store,
            appender: Appender::new(),
        }
    }

    /// The path of a table file `name` in the temp dir.
    pub fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Appends fixture events.
    pub async fn append(&mut self, events: &[RunEvent]) {
        self.appender.append(&*self.store, events).await.unwrap();
    }
}

/// Opens (or creates) a buffered embedded log in `dir`.
pub fn open_store(dir: &Path) -> SharedStore {
    Arc::new(
        EmbeddedLog::open(
            dir,
            LogOptions::default().with_durability(Durability::Buffered),
        )
        .unwrap(),
    )
}

/// A fixture of `agent_runs` agent runs, with every shape present.
pub fn events(agent_runs: usize, seed: u64) -> Vec<RunEvent> {
    script(&FixtureSpec {
        agent_runs,
        seed,
        concurrency: 24,
    })
}

/// Every row of the AgentRun table at `path`.
pub fn rows(path: &Path) -> Vec<AgentRun> {
    RunQueries::open(path).unwrap().all_runs().unwrap()
}

/// The metrics of the AgentRun table at `path`, rendered.
pub fn metrics_text(path: &Path) -> String {
    AgentRunsProjection::open(path).unwrap().metrics().render()
}
