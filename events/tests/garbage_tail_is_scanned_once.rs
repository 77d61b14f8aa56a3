//! Opening a log whose tail is megabytes of garbage reads it a few times at
//! most: recovery is linear in the bytes it scans. It once searched for a
//! valid record after every byte, checking each candidate's checksum over
//! the length it claimed: 32 MiB of random bytes took 74 s, and the tail
//! below (every fourth byte offset claiming a 1 MiB record) did not finish
//! in 5 minutes.
//!
//! Work is measured as bytes read by this process (`rchar` in
//! `/proc/self/io`), not as time; this file holds one test so that nothing
//! else reads meanwhile.

use std::io::Write;

use neonhub_events::{EmbeddedLog, EventStore, ExpectedRevision, LogOptions, Position, StreamId};
use neonhub_test_support::event_data;
use rand::{RngCore, SeedableRng};

fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_random_byte_tail_is_read_a_few_times_not_once_per_byte() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg-00000000000000000000.log");
    {
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        let s = StreamId::new("s").unwrap();
        for i in 0u64..20 {
            log.append(
                &s,
                ExpectedRevision::Any,
                vec![event_data("test.event.v1", i.to_le_bytes().to_vec())],
            )
            .await
            .unwrap();
        }
    }
    let good = std::fs::metadata(&seg).unwrap().len();
    // Random bytes, then a stretch where every fourth offset reads as the
    // frame of a 1 MiB record (`00 00 10 00`) with a plausible position.
    let mut garbage = vec![0u8; 1 << 20];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut garbage);
    garbage.extend([0x00, 0x00, 0x10, 0x00].repeat(3 << 18));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    let size = good + garbage.len() as u64;

    let before = bytes_read();
    let log = EmbeddedLog::open(dir.path(), LogOptions::default())
        .expect("a garbage tail is a torn write");
    let read = bytes_read() - before;
    assert_eq!(log.head().await.unwrap(), Position(20));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    assert!(
        read <= 8 * size,
        "opening a {size}-byte segment read {read} bytes ({}x)",
        read / size
    );
}
