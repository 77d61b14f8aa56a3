//! The EventStore contract suite against the EventStoreDB backend: always
//! through the in-process test server, and also against a real EventStoreDB
//! / KurrentDB node when `NEONHUB_TEST_EVENTSTORE_URL` is set (e.g.
//! `esdb://localhost:2113?tls=false`); the suite uses unique stream names
//! and head-relative positions, so a server holding other data is fine.
#![cfg(feature = "eventstoredb")]

use std::sync::Arc;

use async_trait::async_trait;
use neonhub_esdb_test_server::TestServer;
use neonhub_events::contract::Backend;
use neonhub_events::{EsdbStore, SharedStore};

/// The backend through a connection string; `_server` keeps the test server
/// (and its events) alive across the suite's close and reopen.
struct Esdb {
    url: String,
    _server: Option<TestServer>,
}

impl Esdb {
    fn test_server() -> Self {
        let server = TestServer::start().expect("start the test server");
        Self {
            url: server.url(),
            _server: Some(server),
        }
    }

    fn real_server() -> Option<Self> {
        let url = std::env::var("NEONHUB_TEST_EVENTSTORE_URL").ok()?;
        Some(Self { url, _server: None })
    }
}

#[async_trait]
impl Backend for Esdb {
    async fn open(&self) -> SharedStore {
        Arc::new(EsdbStore::connect(&self.url).expect("connection string"))
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

/// Through the in-process test server: always runs.
mod test_server {
    use super::Esdb;

    neonhub_events::contract_suite!(Esdb::test_server());
}

/// Against a real node, when `NEONHUB_TEST_EVENTSTORE_URL` names one.
mod real_server {
    use super::Esdb;

    neonhub_events::contract_suite!(match Esdb::real_server() {
        Some(backend) => backend,
        None => {
            eprintln!(
                "skipped: set NEONHUB_TEST_EVENTSTORE_URL (e.g. esdb://localhost:2113?tls=false) \
                 to run the contract suite against a real EventStoreDB / KurrentDB node"
            );
            return;
        }
    });
}
