//! The EventStoreDB / KurrentDB backend (feature `eventstoredb`), through
//! the official `kurrentdb` gRPC client.

mod connection;
mod error;
mod mapping;
mod store;
mod subscription;

pub use store::{EsdbOptions, EsdbStore};
