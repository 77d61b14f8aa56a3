//! The helpers `start_with_recovery.rs` reaches as `common::`; they live in
//! `neonhub-test-support` with everything else the tests share.

pub(crate) use neonhub_test_support::{all, events, recorded, shape, store};
