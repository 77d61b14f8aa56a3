//! Helpers shared by the scenario tests: a real embedded log in a temp dir,
//! filled with synthetic runs of every shape.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use neonhub_events::{Durability, EmbeddedLog, LogOptions, RunEvent, SharedStore};
use neonhub_projections::fixture::{Appender, FixtureSpec, script};
use neonhub_projections::{AgentRun, AgentRunsProjection, RunQueries};

pub struct TestLog {
    pub dir: tempfile::TempDir,
    pub store: SharedStore,
    pub appender: Appender,
}

impl TestLog {
    pub fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("log"));
        Self {
            dir,
            store,
            appender: Appender::new(),
        }
    }

    pub fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn append(&mut self, events: &[RunEvent]) {
        self.appender.append(&*self.store, events).await.unwrap();
    }
}

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

pub fn rows(path: &Path) -> Vec<AgentRun> {
    RunQueries::open(path).unwrap().all_runs().unwrap()
}

pub fn metrics_text(path: &Path) -> String {
    AgentRunsProjection::open(path).unwrap().metrics().render()
}
