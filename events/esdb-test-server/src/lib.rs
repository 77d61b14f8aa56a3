//! An in-process EventStoreDB / KurrentDB server for tests and benches: the
//! gRPC `Streams` service (append, read a stream, read `$all`, subscriptions)
//! over events kept in memory, generated from the `.proto` files the
//! `kurrentdb` client crate ships.
//!
//! It behaves as the server documents where a client can tell: expected
//! revision checks, idempotent event ids, `$all` positions that are byte
//! offsets (commit = prepare for every event), inclusive forward reads,
//! subscriptions that start after their position and announce `CaughtUp`,
//! filters with checkpoints, the 1 MiB append limit, and "not leader"
//! answers. It is dev-only: never a dependency of the shipped binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = neonhub_esdb_test_server::TestServer::start()?;
//! let url = server.url(); // esdb://127.0.0.1:PORT?tls=false
//! # let _ = url; Ok(()) }
//! ```

mod log;
mod quickack;
mod service;

#[allow(
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms
)]
mod proto {
    pub mod event_store {
        pub mod client {
            include!(concat!(env!("OUT_DIR"), "/event_store.client.rs"));
            pub mod streams {
                include!(concat!(env!("OUT_DIR"), "/event_store.client.streams.rs"));
            }
        }
    }
    pub mod google {
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use uuid::Uuid;

use crate::log::{Expected, Proposed};
use crate::proto::event_store::client::streams::streams_server::StreamsServer;
use crate::service::{Shared, StreamsService};

/// EventStoreDB's default limit on the size of one append request.
pub const DEFAULT_MAX_APPEND_SIZE: usize = 1024 * 1024;

/// A running server, stopped when dropped. Open connections are cut (not
/// closed gracefully), as when a real node goes away.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    ///
    /// # Errors
    /// When no socket can be bound or no runtime started.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(([127, 0, 0, 1], 0).into(), DEFAULT_MAX_APPEND_SIZE)
    }

    /// Starts a server on `addr` (port 0: any free port) that refuses appends
    /// larger than `max_append_size` bytes, as `--max-append-size` does.
    ///
    /// # Errors
    /// When `addr` cannot be bound or no runtime started.
    pub fn start_with(addr: SocketAddr, max_append_size: usize) -> std::io::Result<Self> {
        // std sets SO_REUSEADDR on Unix, so a stopped server's port can be
        // bound again at once (tests restart a server on the same port).
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("esdb-test-server")
            .enable_all()
            .build()?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(max_append_size));
        seed_system_events(&shared);
        let service = StreamsService {
            shared: shared.clone(),
        };
        runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("esdb test server cannot listen: {e}"),
            };
            let incoming = TcpListenerStream::new(listener)
                .map(|stream| stream.and_then(quickack::QuickAck::new));
            let served = tonic::transport::Server::builder()
                .add_service(StreamsServer::new(service))
                .serve_with_incoming(incoming)
                .await;
            if let Err(e) = served {
                eprintln!("esdb test server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection string for it: `esdb://127.0.0.1:PORT?tls=false`.
    pub fn url(&self) -> String {
        format!("esdb://{}?tls=false", self.addr)
    }

    /// How many events it holds, system events included.
    pub fn event_count(&self) -> usize {
        self.shared.log().len()
    }

    /// Appends one system event (stream `$stats-test`, type
    /// `$statsCollected`), as a real node does every so often.
    pub fn append_system_event(&self) {
        let proposed = Proposed {
            id: Uuid::new_v4(),
            event_type: "$statsCollected".to_string(),
            content_type: "application/json".to_string(),
            custom_metadata: Vec::new(),
            data: b"{}".to_vec(),
        };
        self.shared
            .append("$stats-test", Expected::Any, vec![proposed]);
    }

    /// From now on, answer appends and reads as a follower node would: "not
    /// leader", pointing at `leader` (`None` to lead again).
    pub fn set_not_leader(&self, leader: Option<(String, u16)>) {
        self.shared.faults().not_leader = leader;
    }

    /// Ends every live subscription (once caught up) with `UNAVAILABLE`,
    /// as a node that steps down or restarts does; clients resubscribe.
    pub fn drop_subscriptions(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Wait `delay` before handling each append (to let client deadlines
    /// expire).
    pub fn set_append_delay(&self, delay: Duration) {
        self.shared.faults().append_delay = delay;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it may run inside another runtime; the tasks
            // (and with them the listener and every connection) are dropped.
            runtime.shutdown_background();
        }
    }
}

/// A fresh node already holds system events before any user writes.
fn seed_system_events(shared: &Shared) {
    for (stream, event_type) in [("$settings", "$settings"), ("$users", "$User")] {
        let proposed = Proposed {
            id: Uuid::new_v4(),
            event_type: event_type.to_string(),
            content_type: "application/json".to_string(),
            custom_metadata: Vec::new(),
            data: b"{}".to_vec(),
        };
        shared.append(stream, Expected::Any, vec![proposed]);
    }
}
