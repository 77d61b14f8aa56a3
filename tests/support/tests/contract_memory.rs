//! The EventStore contract suite, run against the in-memory store (reopened
//! through another handle to the same events by the reopen contract).

use std::sync::Arc;

use async_trait::async_trait;
use neonhub_events::SharedStore;
use neonhub_events::contract::Backend;
use neonhub_test_support::MemoryStore;

/// The events outlive each handle the suite opens and closes.
struct Memory {
    events: MemoryStore,
}

#[async_trait]
impl Backend for Memory {
    async fn open(&self) -> SharedStore {
        Arc::new(self.events.clone())
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

neonhub_events::contract_suite!(Memory {
    events: MemoryStore::new()
});
