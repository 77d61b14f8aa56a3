//! Fuzz target: the fuzz input as the payload of a recorded event of every
//! event type, through the codec and plain MessagePack decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    neonhub_events_fuzz::event_decoding(data);
});
