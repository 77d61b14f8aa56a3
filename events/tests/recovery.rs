//! Opening a damaged log: a torn tail is cut at every byte offset of the last
//! two records (atomically per batch), a flipped byte anywhere in the middle
//! is reported as corruption with file and offset, and a rewritten record is
//! caught by the hash chain.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    Direction, EmbeddedLog, Error, EventData, EventStore, ExpectedRevision, LogOptions, Position,
    ReadFrom, Revision, StreamId,
};
use neonhub_test_support::event_data;

fn event(n: u64) -> EventData {
    event_data(
        "test.event.v1",
        format!("event number {n} with some payload").into_bytes(),
    )
}

fn first_segment(dir: &Path) -> PathBuf {
    dir.join("seg-00000000000000000000.log")
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

async fn append(log: &EmbeddedLog, stream: &str, events: Vec<EventData>) {
    log.append(
        &StreamId::new(stream).unwrap(),
        ExpectedRevision::Any,
        events,
    )
    .await
    .unwrap();
}

async fn all_numbers(log: &EmbeddedLog) -> Vec<String> {
    log.read_all(Position::START, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_every_offset_of_the_last_two_appends() {
    let base = tempfile::tempdir().unwrap();
    let seg = first_segment(base.path());
    // 20 single events, then one batch of 3, then one single event.
    let (before_batch, before_last) = {
        let log = EmbeddedLog::open(base.path(), LogOptions::default()).unwrap();
        for i in 0..20 {
            append(&log, "s", vec![event(i)]).await;
        }
        let a = len(&seg);
        append(&log, "t", vec![event(20), event(21), event(22)]).await;
        let b = len(&seg);
        append(&log, "s", vec![event(23)]).await;
        (a, b)
    };
    let full = len(&seg);
    let expected_all = {
        let log = EmbeddedLog::open(base.path(), LogOptions::default()).unwrap();
        all_numbers(&log).await
    };
    assert_eq!(expected_all.len(), 24);

    for cut in before_batch..full {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let f = OpenOptions::new()
            .write(true)
            .open(first_segment(dir.path()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);

        let log = EmbeddedLog::open(dir.path(), LogOptions::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: the log did not open: {e}"));
        let kept = if cut < before_last { 20 } else { 23 };
        let got = all_numbers(&log).await;
        assert_eq!(got, expected_all[..kept], "cut at {cut}");
        assert_eq!(log.head().await.unwrap(), Position(kept as u64));
        // Appends continue where the log now ends, and survive a reopen.
        let r = log
            .append(
                &StreamId::new("s").unwrap(),
                ExpectedRevision::Exact(Revision(19)),
                vec![event(99)],
            )
            .await
            .unwrap_or_else(|e| panic!("cut at {cut}: append after recovery failed: {e}"));
        assert_eq!(r.first_position, Position(kept as u64));
        drop(log);
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(log.head().await.unwrap(), Position(kept as u64 + 1));
        log.verify().unwrap();
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_middle_is_corruption_with_file_and_offset() {
    let base = tempfile::tempdir().unwrap();
    let seg = first_segment(base.path());
    {
        let log = EmbeddedLog::open(base.path(), LogOptions::default()).unwrap();
        for i in 0..60 {
            append(&log, &format!("s{}", i % 7), vec![event(i)]).await;
        }
    }
    let full = len(&seg);
    // Every byte of a stretch in the middle, covering several whole records.
    let (from, to) = (full / 3, full / 3 + 400);
    for at in from..to {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let path = first_segment(dir.path());
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, at).unwrap();
        f.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
        drop(f);
        match EmbeddedLog::open(dir.path(), LogOptions::default()) {
            Err(Error::Corruption {
                segment, offset, ..
            }) => {
                assert_eq!(segment, path, "flip at {at}");
                assert!(
                    offset <= at && at - offset < 200,
                    "flip at {at} reported at {offset}"
                );
            }
            Err(other) => panic!("flip at {at}: wrong error {other}"),
            Ok(_) => panic!("flip at {at} was silently accepted"),
        }
        // Refusing to open must not have changed the file.
        assert_eq!(len(&path), full);
    }
}

#[tokio::test]
async fn damage_in_a_sealed_segment_and_a_missing_segment_are_corruption() {
    let base = tempfile::tempdir().unwrap();
    let options = LogOptions::default().with_segment_size(4096);
    {
        let log = EmbeddedLog::open(base.path(), options.clone()).unwrap();
        for i in 0..200 {
            append(&log, "s", vec![event(i)]).await;
        }
    }
    let mut segments: Vec<PathBuf> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "expected rotation");

    // The last byte of a sealed segment: no valid record after it in that
    // file, but it is sealed, so it cannot be a torn tail. Opening does not
    // re-read sealed segments (their index files say what they hold), so
    // the damage is named where the record is read: by a read, and by
    // `verify`; and by opening when the index has to be rebuilt.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    let sealed = dir.path().join(segments[1].file_name().unwrap());
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&sealed)
        .unwrap();
    let end = f.metadata().unwrap().len() - 1;
    f.write_all_at(&[0xff], end).unwrap();
    drop(f);
    {
        let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
        match log.read_all(Position::START, usize::MAX).await {
            Err(Error::Corruption { segment, .. }) => assert_eq!(segment, sealed),
            other => panic!("reading damage in a sealed segment: {other:?}"),
        }
        match log.verify() {
            Err(Error::Corruption { segment, .. }) => assert_eq!(segment, sealed),
            other => panic!("verifying damage in a sealed segment: {other:?}"),
        }
    }
    std::fs::remove_file(sealed.with_extension("idx")).unwrap();
    match EmbeddedLog::open(dir.path(), options.clone()) {
        Err(Error::Corruption { segment, .. }) => assert_eq!(segment, sealed),
        other => panic!("damage in a sealed segment, index rebuilt: {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    std::fs::remove_file(dir.path().join(segments[1].file_name().unwrap())).unwrap();
    match EmbeddedLog::open(dir.path(), options) {
        Err(Error::Corruption {
            segment, reason, ..
        }) => {
            assert_eq!(segment, dir.path().join(segments[2].file_name().unwrap()));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("a missing segment: {other:?}"),
    }
}

#[tokio::test]
async fn a_rewritten_record_with_a_valid_checksum_breaks_the_hash_chain() {
    let dir = tempfile::tempdir().unwrap();
    let seg = first_segment(dir.path());
    let sound = {
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        for i in 0..30 {
            append(&log, "s", vec![event(i)]).await;
        }
        let report = log.verify().unwrap();
        assert_eq!(report.events, 30);
        assert_eq!(report.head, Position(30));
        report
    };
    // Find record 12 by walking the frames, rewrite a payload byte and fix
    // its CRC, as a forger would.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    // Group frames (32 bytes, starting "NHgr") sit between the records.
    let skip_group = |offset: &mut u64| {
        let mut magic = [0u8; 4];
        f.read_exact_at(&mut magic, *offset).unwrap();
        if &magic == b"NHgr" {
            *offset += 32;
        }
    };
    let mut offset = 64u64;
    for _ in 0..12 {
        skip_group(&mut offset);
        let mut len = [0u8; 4];
        f.read_exact_at(&mut len, offset).unwrap();
        offset += 8 + u64::from(u32::from_le_bytes(len));
    }
    skip_group(&mut offset);
    let mut len = [0u8; 4];
    f.read_exact_at(&mut len, offset).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    f.read_exact_at(&mut body, offset + 8).unwrap();
    let text = b"event number 12";
    let at = body.windows(text.len()).position(|w| w == text).unwrap() + 14;
    body[at] = b'9';
    f.write_all_at(&body, offset + 8).unwrap();
    f.write_all_at(&crc32c::crc32c(&body).to_le_bytes(), offset + 4)
        .unwrap();
    drop(f);

    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    let forged = log
        .read_stream(
            &StreamId::new("s").unwrap(),
            Direction::Forwards,
            ReadFrom::Revision(Revision(12)),
            1,
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&forged[0].payload).contains("number 19"));
    match log.verify() {
        Err(Error::ChainBroken {
            position,
            segment,
            offset: at,
        }) => {
            assert_eq!(position, Position(12));
            assert_eq!(segment, seg);
            assert_eq!(at, offset);
        }
        other => panic!("the forgery was not caught: {other:?} (sound was {sound:?})"),
    }
}

#[tokio::test]
async fn the_head_hash_is_stable_across_reopen_and_changes_with_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(log.verify().unwrap().events, 0);
        append(&log, "s", vec![event(0), event(1)]).await;
        log.verify().unwrap()
    };
    let log = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.verify().unwrap(), first);
    append(&log, "s", vec![event(2)]).await;
    let second = log.verify().unwrap();
    assert_eq!(second.events, 3);
    assert_ne!(second.head_hash, first.head_hash);
    assert_eq!(second.head_hash_hex().len(), 64);
}
