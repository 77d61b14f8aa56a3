//! Runs the in-memory EventStoreDB test server until killed, for trying
//! neonhub against it by hand or running the contract suite's real-server
//! mode against it:
//!
//! ```sh
//! cargo run -p neonhub-esdb-test-server -- 127.0.0.1:2113
//! NEONHUB_TEST_EVENTSTORE_URL='esdb://127.0.0.1:2113?tls=false' \
//!   cargo test -p neonhub-events --features eventstoredb --test contract_esdb
//! ```

use std::net::SocketAddr;

use neonhub_esdb_test_server::{DEFAULT_MAX_APPEND_SIZE, TestServer};

fn main() {
    let addr: SocketAddr = match std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:2113")
        .parse()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("usage: esdb-test-server [ADDR:PORT] ({e})");
            std::process::exit(2);
        }
    };
    let server = match TestServer::start_with(addr, DEFAULT_MAX_APPEND_SIZE) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("esdb-test-server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", server.url());
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
