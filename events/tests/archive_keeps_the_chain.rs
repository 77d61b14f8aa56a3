//! Archiving old sealed segments (`EmbeddedLog::archive`): the live log
//! reopens after the archived range and continues its chain, reads of
//! archived events say where they went, appends still know the archived
//! streams, verification proves the chain with and without the archive, and
//! a damaged or missing archived file or manifest is named. Archiving also
//! works beside a writer that keeps appending and reading (the `serve` case).

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use neonhub_events::{
    Direction, EmbeddedLog, Error, EventData, EventStore, ExpectedRevision, LogOptions, Position,
    ReadFrom, Revision, StreamId, Timestamp,
};
use neonhub_test_support::event_data;

/// No limit from a table's checkpoint.
const ALL: Position = Position(u64::MAX);

fn options() -> LogOptions {
    LogOptions::default().with_segment_size(8 * 1024)
}

fn event(n: u64) -> EventData {
    event_data(
        "test.event.v1",
        format!("event {n} {}", "x".repeat((n % 50) as usize)).into_bytes(),
    )
}

type Model = BTreeMap<String, Vec<Vec<u8>>>;

/// Appends `n` events, one or two per append, to the streams `names` in
/// turn; records them in `model`.
async fn fill(log: &EmbeddedLog, model: &mut Model, names: &[String], n: u64) {
    for i in 0..n {
        let name = &names[(i as usize) % names.len()];
        let have = model.entry(name.clone()).or_default();
        let expected = match have.len() {
            0 => ExpectedRevision::NoStream,
            k => ExpectedRevision::Exact(Revision(k as u64 - 1)),
        };
        let e = event(i);
        have.push(e.payload.clone());
        log.append(&StreamId::new(name).unwrap(), expected, vec![e])
            .await
            .unwrap();
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn read(log: &EmbeddedLog, name: &str) -> neonhub_events::Result<Vec<Vec<u8>>> {
    Ok(log
        .read_stream(
            &StreamId::new(name).unwrap(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await?
        .into_iter()
        .map(|e| e.payload)
        .collect())
}

/// A log whose first segments hold only `old-*` streams (and the first
/// events of `span-*` streams), all recorded before the returned cut-off,
/// and whose later segments hold the rest of `span-*` and the `new-*`
/// streams.
async fn two_ages(dir: &Path) -> (Model, Timestamp) {
    let log = EmbeddedLog::open(dir, options()).unwrap();
    let mut model = Model::new();
    let mut old = names("old", 9);
    old.extend(names("span", 3));
    fill(&log, &mut model, &old, 400).await;
    // Seal the segment holding the last old events.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cut = Timestamp::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut new = names("new", 5);
    new.extend(names("span", 3));
    fill(&log, &mut model, &new, 400).await;
    log.close();
    (model, cut)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn archived_events_are_named_and_the_chain_is_proved_across_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let to = tmp.path().join("archive");
    let (model, cut) = two_ages(&dir).await;
    let before = {
        let log = EmbeddedLog::open_read_only(&dir, options()).unwrap();
        log.verify().unwrap()
    };
    let live_before = files(&dir, ".log").len();

    // Nothing past a table's checkpoint leaves the log.
    let held = EmbeddedLog::archive(&dir, cut, Position(1), &to).unwrap();
    assert_eq!(held.segments, 0, "{held:?}");
    assert!(held.stopped.contains("AgentRun table"), "{held:?}");
    assert_eq!(files(&dir, ".log").len(), live_before);

    let report = EmbeddedLog::archive(&dir, cut, ALL, &to).unwrap();
    assert!(report.segments > 0, "{report:?}");
    assert!(report.first_live > Position(0));
    assert_eq!(files(&to, ".log.zst").len(), report.segments);
    assert_eq!(files(&dir, ".log").len(), live_before - report.segments);
    assert!(report.compressed_bytes < report.bytes);
    // Archiving again with the same cut-off finds nothing more.
    let again = EmbeddedLog::archive(&dir, cut, ALL, &to).unwrap();
    assert_eq!(again.segments, 0, "{again:?}");
    assert_eq!(again.first_live, report.first_live);

    let log = EmbeddedLog::open(&dir, options()).unwrap();
    assert_eq!(log.archived_before(), report.first_live);
    // Whole old streams and the archived start of spanning ones say where
    // they went; streams begun after the cut-off read in full.
    for name in ["old-0", "old-8", "span-1"] {
        match read(&log, name).await {
            Err(Error::Archived {
                stream, archive, ..
            }) => {
                assert_eq!(stream.unwrap().as_str(), name);
                assert_eq!(archive, std::fs::canonicalize(&to).unwrap());
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for name in names("new", 5) {
        assert_eq!(read(&log, &name).await.unwrap(), model[&name], "{name}");
    }
    // The live part of a spanning stream still reads, from its revision.
    let span = StreamId::new("span-1").unwrap();
    let tail = log
        .read_stream(&span, Direction::Backwards, ReadFrom::End, 3)
        .await
        .unwrap();
    let want: Vec<&Vec<u8>> = model["span-1"].iter().rev().take(3).collect();
    assert_eq!(tail.iter().map(|e| &e.payload).collect::<Vec<_>>(), want);
    assert!(matches!(
        log.read_all(Position(0), 10).await,
        Err(Error::Archived { stream: None, .. })
    ));
    let live = log.read_all(report.first_live, usize::MAX).await.unwrap();
    assert_eq!(live[0].position, report.first_live);
    // Appends still know the archived streams: an archived stream is not
    // new, and a spanning one continues at its revision.
    let old = StreamId::new("old-3").unwrap();
    assert!(matches!(
        log.append(&old, ExpectedRevision::NoStream, vec![event(1)])
            .await,
        Err(Error::WrongExpectedVersion { .. })
    ));
    let next = Revision(model["span-1"].len() as u64 - 1);
    log.append(&span, ExpectedRevision::Exact(next), vec![event(2)])
        .await
        .unwrap();
    // The chain: without the archive, from the recorded hash; with it, from
    // the first event; the head hash is the one before archiving, continued.
    let at_head = log.verify().unwrap();
    assert_eq!(at_head.archived, report.first_live.0);
    let full = log.verify_with_archive(&to).unwrap();
    assert_eq!(full.archived, 0);
    assert_eq!(full.head_hash, at_head.head_hash);
    assert_eq!(full.events, before.events + 1);
    drop(log);

    // Reopened read-only too.
    let ro = EmbeddedLog::open_read_only(&dir, options()).unwrap();
    assert_eq!(
        ro.verify_with_archive(&to).unwrap().head_hash,
        full.head_hash
    );
}

/// Runs `verify_with_archive` on a fresh read-only handle.
fn verify_across(dir: &Path, to: &Path) -> neonhub_events::Result<neonhub_events::VerifyReport> {
    EmbeddedLog::open_read_only(dir, options())?.verify_with_archive(to)
}

#[tokio::test]
async fn a_damaged_or_missing_archive_file_or_manifest_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let to = tmp.path().join("archive");
    let (_, cut) = two_ages(&dir).await;
    EmbeddedLog::archive(&dir, cut, ALL, &to).unwrap();
    verify_across(&dir, &to).unwrap();
    let zst = files(&to, ".log.zst");
    let victim = zst.last().unwrap().clone();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();

    // One byte of a compressed file changed.
    let original = std::fs::read(&victim).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    let at = original.len() / 2;
    f.write_all_at(&[original[at] ^ 0x20], at as u64).unwrap();
    drop(f);
    let e = verify_across(&dir, &to).unwrap_err();
    assert!(e.to_string().contains(&name), "{e}");
    // The live log alone still verifies from the recorded hash.
    EmbeddedLog::open_read_only(&dir, options())
        .unwrap()
        .verify()
        .unwrap();
    std::fs::write(&victim, &original).unwrap();
    verify_across(&dir, &to).unwrap();

    // A compressed file removed.
    std::fs::rename(&victim, tmp.path().join("aside")).unwrap();
    let e = verify_across(&dir, &to).unwrap_err();
    assert!(
        matches!(&e, Error::ArchiveDamaged { path, .. } if *path == victim),
        "{e}"
    );
    assert!(e.to_string().contains("missing"), "{e}");
    std::fs::rename(tmp.path().join("aside"), &victim).unwrap();

    // The archive's manifest removed.
    let manifest = to.join("MANIFEST.json");
    std::fs::rename(&manifest, tmp.path().join("aside")).unwrap();
    let e = verify_across(&dir, &to).unwrap_err();
    assert!(e.to_string().contains("MANIFEST.json"), "{e}");
    std::fs::rename(tmp.path().join("aside"), &manifest).unwrap();
    verify_across(&dir, &to).unwrap();

    // The live manifest removed: the log no longer opens, and says why.
    let live = dir.join("ARCHIVE.json");
    std::fs::rename(&live, tmp.path().join("aside")).unwrap();
    let e = EmbeddedLog::open_read_only(&dir, options()).unwrap_err();
    assert!(e.to_string().contains("ARCHIVE.json"), "{e}");
    let e = EmbeddedLog::open(&dir, options()).unwrap_err();
    assert!(e.to_string().contains("ARCHIVE.json"), "{e}");
    std::fs::rename(tmp.path().join("aside"), &live).unwrap();

    // A live manifest whose last hash is not the one the live log
    // continues: the chain is broken at the first live segment.
    let text = std::fs::read_to_string(&live).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let last = json["segments"].as_array().unwrap().last().unwrap()["last_chain"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = format!(
        "{}{}",
        if last.starts_with('0') { "1" } else { "0" },
        &last[1..]
    );
    std::fs::write(&live, text.replace(&last, &forged)).unwrap();
    let e = EmbeddedLog::open_read_only(&dir, options()).unwrap_err();
    assert!(
        matches!(e, Error::ChainBroken { .. }) && e.to_string().contains(".log"),
        "{e}"
    );
}

#[tokio::test]
async fn archiving_beside_an_open_writer_that_keeps_appending_and_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let to = tmp.path().join("archive");
    let log = EmbeddedLog::open(&dir, options()).unwrap();
    let mut model = Model::new();
    fill(&log, &mut model, &names("old", 7), 300).await;
    // Read an old stream first, so its segment's handle is cached.
    assert_eq!(read(&log, "old-2").await.unwrap(), model["old-2"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cut = Timestamp::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    fill(&log, &mut model, &names("new", 3), 200).await;

    // The writer holds the directory lock; archiving goes ahead beside it.
    let report = EmbeddedLog::archive(&dir, cut, ALL, &to).unwrap();
    assert!(report.segments > 0);
    match read(&log, "old-2").await {
        Err(Error::Archived { archive, .. }) => {
            assert_eq!(archive, std::fs::canonicalize(&to).unwrap())
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        log.read_all(Position(0), 1).await,
        Err(Error::Archived { .. })
    ));
    // Appends and reads of live streams go on.
    fill(&log, &mut model, &names("new", 3), 200).await;
    for name in names("new", 3) {
        assert_eq!(read(&log, &name).await.unwrap(), model[&name]);
    }
    let old = StreamId::new("old-1").unwrap();
    let next = Revision(model["old-1"].len() as u64 - 1);
    log.append(&old, ExpectedRevision::Exact(next), vec![event(9)])
        .await
        .unwrap();
    let live = log.verify().unwrap();
    assert_eq!(live.archived, report.first_live.0);
    let head = log.verify_with_archive(&to).unwrap().head_hash;
    log.close();
    drop(log);
    let reopened = EmbeddedLog::open(&dir, options()).unwrap();
    assert_eq!(reopened.verify_with_archive(&to).unwrap().head_hash, head);
}
