//! The persisted index: every sealed segment gets an index file, opening
//! uses it instead of reading the segment, and a missing, damaged or stale
//! index file is rebuilt from the segment, never trusted. Reads through the
//! index files return exactly what was appended.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    Direction, EmbeddedLog, Error, EventData, EventStore, ExpectedRevision, LogOptions, Position,
    ReadFrom, Revision, StreamId,
};
use neonhub_test_support::event_data;

const STREAMS: u64 = 37;

fn options() -> LogOptions {
    LogOptions::default().with_segment_size(8 * 1024)
}

fn event(n: u64) -> EventData {
    event_data(
        "test.event.v1",
        format!("event {n} {}", "x".repeat((n % 50) as usize)).into_bytes(),
    )
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Appends `n` events over `STREAMS` streams (batches of one to three);
/// returns each stream's payloads in revision order.
async fn fill(log: &EmbeddedLog, n: u64) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut model: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut i = 0;
    while i < n {
        let name = format!("run-{}", (i * 7919) % STREAMS);
        let batch: Vec<EventData> = (i..(i + 1 + i % 3).min(n)).map(event).collect();
        i += batch.len() as u64;
        let have = model.entry(name.clone()).or_default();
        let expected = match have.len() {
            0 => ExpectedRevision::NoStream,
            k => ExpectedRevision::Exact(Revision(k as u64 - 1)),
        };
        have.extend(batch.iter().map(|e| e.payload.clone()));
        log.append(&StreamId::new(&name).unwrap(), expected, batch)
            .await
            .unwrap();
    }
    model
}

/// Checks every stream both ways, from the middle, and the whole log.
async fn check(log: &EmbeddedLog, model: &BTreeMap<String, Vec<Vec<u8>>>) {
    let mut total = 0;
    for (name, want) in model {
        let stream = StreamId::new(name).unwrap();
        let got: Vec<Vec<u8>> = log
            .read_stream(&stream, Direction::Forwards, ReadFrom::Start, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert_eq!(&got, want, "{name} forwards");
        let mid = want.len() / 2;
        let back: Vec<Vec<u8>> = log
            .read_stream(
                &stream,
                Direction::Backwards,
                ReadFrom::Revision(Revision(mid as u64)),
                usize::MAX,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect();
        let mut expect: Vec<Vec<u8>> = want[..=mid].to_vec();
        expect.reverse();
        assert_eq!(back, expect, "{name} backwards from {mid}");
        // A few events from anywhere, both ways: only those are read.
        for (direction, from, limit) in [
            (
                Direction::Forwards,
                ReadFrom::Revision(Revision(mid as u64)),
                3,
            ),
            (Direction::Forwards, ReadFrom::Start, 2),
            (Direction::Forwards, ReadFrom::End, 5),
            (Direction::Backwards, ReadFrom::End, 1),
            (
                Direction::Backwards,
                ReadFrom::Revision(Revision(mid as u64)),
                4,
            ),
            (Direction::Backwards, ReadFrom::Start, 9),
        ] {
            let got: Vec<Vec<u8>> = log
                .read_stream(&stream, direction, from, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.payload)
                .collect();
            let expect: Vec<Vec<u8>> = match (direction, from) {
                (Direction::Forwards, ReadFrom::Revision(r)) => want
                    .iter()
                    .skip(r.0 as usize)
                    .take(limit)
                    .cloned()
                    .collect(),
                (Direction::Forwards, ReadFrom::Start) => {
                    want.iter().take(limit).cloned().collect()
                }
                (Direction::Forwards, ReadFrom::End) => Vec::new(),
                (Direction::Backwards, ReadFrom::End) => {
                    want.iter().rev().take(limit).cloned().collect()
                }
                (Direction::Backwards, ReadFrom::Revision(r)) => want[..=r.0 as usize]
                    .iter()
                    .rev()
                    .take(limit)
                    .cloned()
                    .collect(),
                (Direction::Backwards, ReadFrom::Start) => want[..1].to_vec(),
            };
            assert_eq!(
                got, expect,
                "{name} {direction:?} from {from:?} limit {limit}"
            );
        }
        // Appending at the wrong revision is refused; at the right one works.
        let wrong = log
            .append(
                &stream,
                ExpectedRevision::Exact(Revision(want.len() as u64)),
                vec![event(0)],
            )
            .await;
        assert!(
            matches!(wrong, Err(Error::WrongExpectedVersion { .. })),
            "{name}: {wrong:?}"
        );
        total += want.len();
    }
    let all = log.read_all(Position::START, usize::MAX).await.unwrap();
    assert_eq!(all.len(), total);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.position.0 == i as u64)
    );
    assert_eq!(log.stream_count(), model.len() as u64);
    for from in [1u64, 17, 300, total as u64 - 1] {
        let page = log.read_all(Position(from), 50).await.unwrap();
        assert_eq!(page[0].position, Position(from));
    }
}

#[tokio::test]
async fn sealed_segments_get_index_files_that_reads_use_and_reopening_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let model = {
        let log = EmbeddedLog::open(dir.path(), options()).unwrap();
        let model = fill(&log, 1500).await;
        check(&log, &model).await;
        model
    };
    let segments = files(dir.path(), "log");
    let indexes = files(dir.path(), "idx");
    assert!(segments.len() > 10, "{} segments", segments.len());
    // Every segment but the last (being written) has its index file.
    assert_eq!(indexes.len(), segments.len() - 1);
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    check(&log, &model).await;
    drop(log);
    let ro = EmbeddedLog::open_read_only(dir.path(), options()).unwrap();
    check_read_only(&ro, &model).await;
}

/// As [`check`] without appends.
async fn check_read_only(log: &EmbeddedLog, model: &BTreeMap<String, Vec<Vec<u8>>>) {
    for (name, want) in model {
        let got: Vec<Vec<u8>> = log
            .read_stream(
                &StreamId::new(name).unwrap(),
                Direction::Forwards,
                ReadFrom::Start,
                usize::MAX,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert_eq!(&got, want, "{name}");
    }
}

#[tokio::test]
async fn a_missing_damaged_or_stale_index_file_is_rebuilt_from_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let model = {
        let log = EmbeddedLog::open(dir.path(), options()).unwrap();
        fill(&log, 1200).await
    };
    let indexes = files(dir.path(), "idx");
    assert!(indexes.len() >= 6);
    let before: Vec<Vec<u8>> = indexes.iter().map(|p| std::fs::read(p).unwrap()).collect();

    // Deleted.
    std::fs::remove_file(&indexes[0]).unwrap();
    // Damaged header.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&indexes[1])
        .unwrap();
    f.write_all_at(&[0xAA], 20).unwrap();
    drop(f);
    // Damaged Bloom filter / fence keys (the end of the file).
    let len = std::fs::metadata(&indexes[2]).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&indexes[2])
        .unwrap();
    f.write_all_at(&[0x55, 0x55], len - 10).unwrap();
    drop(f);
    // Stale: another segment's index file under this one's name.
    std::fs::copy(&indexes[4], &indexes[3]).unwrap();
    // Cut short.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&indexes[5])
        .unwrap();
    f.set_len(5000).unwrap();
    drop(f);

    // A read-only open reads correctly and writes nothing.
    {
        let ro = EmbeddedLog::open_read_only(dir.path(), options()).unwrap();
        check_read_only(&ro, &model).await;
    }
    assert!(!indexes[0].exists(), "a read-only open wrote an index file");

    // Opening for writing rebuilds them: byte for byte what was written
    // when the segments were sealed.
    let log = EmbeddedLog::open(dir.path(), options()).unwrap();
    check(&log, &model).await;
    for (p, b) in indexes.iter().zip(&before) {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{} rebuilt", p.display());
    }
}

#[tokio::test]
async fn a_damaged_directory_block_is_named_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let model = {
        let log = EmbeddedLog::open(dir.path(), options()).unwrap();
        fill(&log, 600).await
    };
    let idx = files(dir.path(), "idx")[0].clone();
    // The header block and the offsets block come first; the directory
    // block follows. Flip a byte in it.
    let f = std::fs::OpenOptions::new().write(true).open(&idx).unwrap();
    f.write_all_at(&[0xFF], 2 * 4096 + 100).unwrap();
    drop(f);
    let log = EmbeddedLog::open_read_only(dir.path(), options()).unwrap();
    let mut named = 0;
    for name in model.keys() {
        match log
            .read_stream(
                &StreamId::new(name).unwrap(),
                Direction::Forwards,
                ReadFrom::Start,
                usize::MAX,
            )
            .await
        {
            Ok(_) => {}
            Err(Error::Corruption {
                segment, reason, ..
            }) => {
                assert_eq!(segment, idx);
                assert!(reason.contains("delete the .idx file"), "{reason}");
                named += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(named > 0, "no read went through the damaged block");
}
