//! Damage in the middle of the log keeps every command from using it, with
//! an error naming the segment and the offset, and nothing is cut until
//! `neonhub log repair` is run: it cuts there and keeps the removed bytes in
//! a quarantine file beside the segment.

use std::os::unix::fs::FileExt;

use neonhub_test_support::service::{run_cli, stdout};

#[test]
fn corruption_is_reported_and_cut_only_by_log_repair() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let demo = run_cli(data, &["demo", "--runs", "10"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let segment = data.join("log").join("seg-00000000000000000000.log");
    let original = std::fs::read(&segment).unwrap();
    let at = original.len() / 2;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    f.write_all_at(&[original[at] ^ 0x08], at as u64).unwrap();
    drop(f);
    let damaged = std::fs::read(&segment).unwrap();

    // (`runs list` and `report` read the AgentRun table alone: they never
    // open the log, so the damage does not concern them.)
    for args in [&["replay"][..], &["run", "echo", "--input", "{}"]] {
        let output = run_cli(data, args);
        assert!(!output.status.success(), "{args:?} used a corrupt log");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("corrupt event log") && stderr.contains("seg-00000000000000000000.log"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&segment).unwrap(),
            damaged,
            "{args:?} cut the log"
        );
    }

    let repair = run_cli(data, &["log", "repair"]);
    let out = stdout(&repair);
    assert!(
        repair.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(out.starts_with("cut "), "{out}");
    let quarantine = out
        .lines()
        .nth(1)
        .map(str::trim)
        .expect("the quarantine file is named");
    let kept = std::fs::read(quarantine).unwrap();
    let now = std::fs::read(&segment).unwrap();
    assert_eq!([now.as_slice(), kept.as_slice()].concat(), damaged);
    // The table held rows of the cut events: it is kept aside and rebuilt.
    assert!(
        out.contains("the AgentRun table was moved aside to"),
        "{out}"
    );
    let aside = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("agent_runs.sqlite.before-repair-"))
        .count();
    assert!(aside >= 1, "the old table was not kept");

    let list = run_cli(data, &["runs", "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let again = run_cli(data, &["log", "repair"]);
    assert!(
        stdout(&again).starts_with("nothing to repair"),
        "{}",
        stdout(&again)
    );
}
