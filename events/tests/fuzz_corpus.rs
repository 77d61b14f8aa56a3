//! Every committed fuzz corpus file (`events/fuzz/corpus/<target>/`) runs
//! through the fuzz targets' own code, on stable, so CI keeps the corpus (and
//! every crash reproducer added to it) passing without cargo-fuzz.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    files
}

#[test]
fn every_segment_recovery_corpus_file_opens_or_fails_without_a_panic() {
    for (path, bytes) in corpus("segment_recovery") {
        eprintln!("{}", path.display());
        harness::segment_recovery(&bytes);
    }
}

#[test]
fn every_event_decoding_corpus_file_decodes_or_fails_without_a_panic() {
    for (path, bytes) in corpus("event_decoding") {
        eprintln!("{}", path.display());
        harness::event_decoding(&bytes);
    }
}

#[test]
fn the_seeds_are_real_segments_and_payloads_that_decode() {
    let seeds = harness::segment_seeds();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in harness::segment_files(&seeds[0]) {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let log = neonhub_events::EmbeddedLog::open_read_only(dir.path(), Default::default()).unwrap();
    assert_eq!(log.verify().unwrap().events, 9);
    let codec = neonhub_events::Codec::new();
    for (event, payload) in harness::sample_events()
        .iter()
        .zip(harness::payload_seeds())
    {
        let decoded = codec
            .decode_payload(
                event.event_type(),
                &payload,
                neonhub_events::Position::START,
            )
            .unwrap();
        assert_eq!(&decoded, event);
    }
}

/// Writes the seed corpus (real segments and payloads) into
/// `events/fuzz/corpus/`; run before `cargo fuzz cmin` when the format
/// changes: `cargo test -p neonhub-events --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn write_seed_corpus() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/log-1b8a339/log/seg-00000000000000000000.log");
    let mut segments = harness::segment_seeds();
    let mut version_2 = vec![harness::SegmentMode::Raw as u8];
    version_2.extend(std::fs::read(fixture).unwrap());
    segments.push(version_2);
    for (target, seeds) in [
        ("segment_recovery", segments),
        ("event_decoding", harness::payload_seeds()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
