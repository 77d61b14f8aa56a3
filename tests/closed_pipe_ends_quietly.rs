//! A command whose reader has gone (`neonhub runs list | head -1`) ends
//! quietly, as a Unix tool that SIGPIPE ends: no panic, no backtrace, and
//! the status a shell reports for it, 141 (128 + SIGPIPE).

use std::process::Stdio;

use neonhub_test_support::service::{neonhub, run_cli};

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let demo = run_cli(dir.path(), &["demo", "--runs", "300"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let id = String::from_utf8(run_cli(dir.path(), &["runs", "list", "--limit", "1"]).stdout)
        .unwrap()
        .split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .expect("a run id in the list")
        .to_owned();
    for args in [
        // More than a pipe's 64 KiB: it fails even if some lines got out.
        vec!["runs", "list", "--limit", "1000"],
        vec!["runs", "show", &id],
        vec!["report"],
        vec!["audit", "anchor"],
    ] {
        let mut child = neonhub()
            .arg("--data-dir")
            .arg(dir.path())
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before the command has written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}
