//! The EventStore contract suite, run against the embedded log in a temp dir
//! (reopened from the same directory by the reopen contract).

use std::sync::Arc;

use async_trait::async_trait;
use neonhub_events::contract::Backend;
use neonhub_events::{EmbeddedLog, LogOptions, SharedStore};

struct Embedded {
    dir: tempfile::TempDir,
    options: LogOptions,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            // Small segments, so the suite also crosses segment boundaries.
            options: LogOptions::default().with_segment_size(8 * 1024),
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn open(&self) -> SharedStore {
        Arc::new(EmbeddedLog::open(self.dir.path(), self.options.clone()).expect("open log"))
    }

    async fn close(&self, store: SharedStore) {
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the suite leaked a handle to the store"
        );
        drop(store);
    }
}

neonhub_events::contract_suite!(Embedded::new());
