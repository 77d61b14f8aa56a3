//! One writer per log directory even when the `LOCK` file is deleted or
//! replaced under a running writer: the lock is also held on the directory.

use neonhub_events::{EmbeddedLog, Error, LogOptions};

#[test]
fn a_second_writer_is_refused_after_the_lock_file_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let lock = dir.path().join(EmbeddedLog::LOCK_FILE);
    std::fs::remove_file(&lock).unwrap();
    match EmbeddedLog::open(dir.path(), LogOptions::default()) {
        Err(Error::Locked { dir: d, .. }) => assert_eq!(d, dir.path()),
        Ok(_) => panic!("a second writer opened the log after LOCK was deleted"),
        Err(e) => panic!("wrong error: {e}"),
    }
    // Replaced by a new, unlocked file: still refused.
    std::fs::write(&lock, b"").unwrap();
    assert!(matches!(
        EmbeddedLog::open(dir.path(), LogOptions::default()),
        Err(Error::Locked { .. })
    ));
    drop(first);
    EmbeddedLog::open(dir.path(), LogOptions::default()).expect("free once the writer is gone");
}
