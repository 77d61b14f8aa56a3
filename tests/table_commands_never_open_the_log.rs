//! `runs list` (paged with `--all` too) and `report` read the AgentRun
//! table alone: they answer the same with the log's segments gone or
//! unreadable, create and change no file, and without a table they fail
//! saying how to build one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use neonhub_test_support::service::{run_cli, stdout};

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

const COMMANDS: [&[&str]; 4] = [
    &["runs", "list", "--format", "json", "--limit", "1000"],
    &["runs", "list", "--status", "failed"],
    &[
        "runs",
        "list",
        "--all",
        "--kind",
        "connector",
        "--sort",
        "duration",
        "--format",
        "csv",
    ],
    &["report", "--format", "json"],
];

/// Runs each command, checking it changed no file; returns their outputs.
fn answers(data: &Path) -> Vec<String> {
    COMMANDS
        .iter()
        .map(|args| {
            let before = snapshot(data);
            let out = stdout(&run_cli(data, args));
            assert_eq!(before, snapshot(data), "{args:?} created or changed a file");
            out
        })
        .collect()
}

#[test]
fn runs_list_and_report_answer_from_the_table_without_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stdout(&run_cli(&data, &["demo", "--runs", "8"]));
    let with_log = answers(&data);
    assert!(with_log[0].contains("\"run_id\""), "{}", with_log[0]);

    // Every segment unreadable: replaced by bytes that are no log at all.
    let log = data.join("log");
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::write(&path, b"not a segment").unwrap();
        }
    }
    assert_eq!(answers(&data), with_log, "with the segments unreadable");

    // No log directory at all.
    std::fs::remove_dir_all(&log).unwrap();
    assert_eq!(answers(&data), with_log, "without a log");
    assert!(!log.exists(), "a command created the log");
}

#[test]
fn without_a_table_they_say_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stdout(&run_cli(&data, &["demo", "--runs", "3"]));
    let table = data.join(neonhub::PROJECTION_FILE);
    std::fs::remove_file(&table).unwrap();
    for args in COMMANDS {
        let before = snapshot(&data);
        let out = run_cli(&data, args);
        assert!(!out.status.success(), "{args:?} succeeded without a table");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&*table.to_string_lossy())
                && stderr.contains("neonhub serve")
                && stderr.contains("neonhub replay --out"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            before,
            snapshot(&data),
            "{args:?} created or changed a file"
        );
    }

    // The way it names builds the table the commands read.
    let path = table.to_string_lossy().into_owned();
    stdout(&run_cli(&data, &["replay", "--out", &path]));
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&run_cli(&data, COMMANDS[0]))).unwrap();
    assert!(!listed["runs"].as_array().unwrap().is_empty(), "{listed}");
}
