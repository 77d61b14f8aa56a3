//! Fuzz target: the fuzz input as segment files of a log directory, opened
//! read-only and for writing, then read, appended to and repaired.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    neonhub_events_fuzz::segment_recovery(data);
});
