//! The contract every [`EventStore`](crate::EventStore) backend must pass,
//! written once.
//!
//! A backend's test file implements [`Backend`] and expands
//! [`contract_suite!`](crate::contract_suite) to get one `#[tokio::test]` per
//! contract. The tests use fresh, unique stream names and positions relative
//! to the head at their start, so they also run against a shared server that
//! holds other data.
//!
//! The contracts are grouped by what they exercise: `streams` (one
//! stream), `concurrency` (concurrent appends), `all` (`$all` and
//! subscriptions) and `reopen`; `support` holds what they share.

mod all;
mod concurrency;
mod reopen;
mod streams;
mod support;

use async_trait::async_trait;

use crate::store::SharedStore;

pub use all::{
    reads_all_in_global_order_with_paging,
    subscription_hands_over_from_catch_up_to_live_without_gaps,
    subscription_starts_at_a_middle_position,
};
pub use concurrency::{
    batches_are_atomic_and_contiguous, concurrent_appenders_never_share_a_revision,
    only_one_of_racing_creators_wins,
};
pub use reopen::reopening_keeps_every_event_and_revision;
pub use streams::{
    appends_and_reads_a_stream_both_ways,
    enforces_expected_revisions_and_writes_nothing_on_conflict,
    rejects_an_empty_batch_and_keeps_ids_and_metadata,
};

/// How the suite gets at a backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the store (the same data every time it is called).
    async fn open(&self) -> SharedStore;
    /// Closes a store returned by [`Backend::open`] so it can be opened again.
    async fn close(&self, store: SharedStore);
}

/// Expands to one `#[tokio::test]` per contract for the backend that
/// `$backend` (an expression, evaluated once per test) builds.
#[macro_export]
macro_rules! contract_suite {
    ($backend:expr) => {
        $crate::contract_suite!(@tests $backend;
            appends_and_reads_a_stream_both_ways,
            enforces_expected_revisions_and_writes_nothing_on_conflict,
            concurrent_appenders_never_share_a_revision,
            only_one_of_racing_creators_wins,
            batches_are_atomic_and_contiguous,
            reads_all_in_global_order_with_paging,
            subscription_hands_over_from_catch_up_to_live_without_gaps,
            subscription_starts_at_a_middle_position,
            reopening_keeps_every_event_and_revision,
            rejects_an_empty_batch_and_keeps_ids_and_metadata,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                $crate::contract::$name(&backend).await;
            }
        )*
    };
}
