//! The embedded event log: segment files of CRC-framed, hash-chained records,
//! one group-committing writer, and an in-memory index.

mod archive;
mod embedded;
mod format;
mod handles;
mod index;
mod io;
mod manifest;
mod reader;
mod recovery;
mod repair;
mod segidx;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
mod verify;
mod writer;

pub use archive::ArchiveReport;
pub use embedded::{Durability, EmbeddedLog, LogOptions, WriterHealth};
pub use recovery::TornTail;
pub use repair::Repair;
pub use verify::{VerifiedRecord, VerifyReport};
