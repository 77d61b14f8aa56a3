//! What neonhub's test binaries and benches share, written once: waiting on
//! conditions, a temp-dir embedded log and an in-memory [`MemoryStore`],
//! reading a run's events back, sample events and workloads, and (behind
//! features) orchestrator set-up, a local HTTP server standing in for a
//! vendor, a test log of synthetic runs, and the whole service in-process or
//! as a child process.
//!
//! | feature | what it adds | for |
//! | --- | --- | --- |
//! | (none) | `crash::Crashing` (a store that dies), `files::fingerprints`, `tools::required`, [`wait_until`], [`store`], [`MemoryStore`], [`events`], [`shape`], [`silent_server`], [`workload`] | every crate |
//! | `actors` | [`Proxy`], [`Gated`], [`builtin_orchestrator`], [`mock_orchestrator`], [`proxy_orchestrator`] | `neonhub-actors` |
//! | `http` | `http::TestServer` | live-mode connector tests |
//! | `projections` | `projections::TestLog` and reading tables back | `neonhub-projections` |
//! | `service` | `service::InProcess`, `service::ServeProcess`, `load` | the root scenarios |
//! | `http` + `service` | `twilio::live_twilio`, `twilio::fake_twilio` | the root scenarios with live Twilio |
//! | `projections` + `service` | `runs::record`: a data directory of runs shaped by the test | the reporting scenarios |
//!
//! A dev-only crate: nothing here ships in the `neonhub` binary.

#[cfg(feature = "actors")]
mod agents;
pub mod crash;
pub mod files;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "service")]
pub mod load;
mod log;
mod memory;
mod net;
#[cfg(feature = "projections")]
pub mod projections;
#[cfg(all(feature = "service", feature = "projections"))]
pub mod runs;
#[cfg(feature = "service")]
pub mod service;
pub mod tools;
#[cfg(all(feature = "http", feature = "service"))]
pub mod twilio;
mod wait;
pub mod workload;

#[cfg(feature = "actors")]
pub use agents::{
    Gated, Proxy, builtin_orchestrator, mock_orchestrator, proxy_orchestrator, twilio_at,
};
pub use log::{
    all, assert_contiguous, child_runs, event_data, events, memory_store, recorded, shape, store,
    unique_stream,
};
pub use memory::MemoryStore;
pub use net::silent_server;
pub use wait::{PATIENCE, wait_until, wait_until_within};
