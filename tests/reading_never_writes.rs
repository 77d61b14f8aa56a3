//! Read commands change no byte of the data directory, even with a torn
//! write at the end of the log (which only `serve`, the writer, cuts), and a
//! read command pointed at a directory without neonhub data fails naming it
//! instead of creating an empty log.

use std::collections::BTreeMap;
use std::io::Write;
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
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path, bytes);
            }
        }
    }
    files
}

fn last_segment(log: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[test]
fn read_commands_change_no_byte_even_beside_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = run_cli(&data, &["demo", "--runs", "5"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let list = run_cli(&data, &["runs", "list", "--format", "json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let run_id = listed["runs"][0]["run_id"].as_str().unwrap().to_string();

    // A torn write: half a group at the end of the last segment, as a power
    // loss during an append leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(&data.join("log")))
        .unwrap()
        .write_all(&[0x4e, 0x48, 0x67, 0x72, 9, 9, 9])
        .unwrap();

    let out = dir.path().join("replayed.sqlite");
    let commands: [&[&str]; 6] = [
        &["runs", "list"],
        &["runs", "show", &run_id],
        &["report"],
        &["replay", "--out", out.to_str().unwrap()],
        &["audit", "verify"],
        &["audit", "anchor"],
    ];
    for args in commands {
        let before = snapshot(&data);
        let output = run_cli(&data, args);
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        let after = snapshot(&data);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{args:?} created or removed files"
        );
        for (path, bytes) in &before {
            assert!(after[path] == *bytes, "{args:?} changed {}", path.display());
        }
    }
}

#[test]
fn a_read_command_on_a_directory_without_neonhub_data_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("dtaa");
    for args in [
        &["runs", "list"][..],
        &["report"],
        &["replay"],
        &["audit", "verify"],
        &["audit", "anchor"],
    ] {
        let output = run_cli(&typo, args);
        assert!(
            !output.status.success(),
            "{args:?} succeeded on {}",
            typo.display()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&*typo.to_string_lossy()),
            "{args:?}: the error does not name the path: {stderr}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}
