//! The README's first command (`demo`, on the default `./data`) works as
//! written and shows failures as well as successes; the commands it points
//! to work on what it left; every command's `--help` has examples.

use neonhub_test_support::service::{neonhub, stdout};
use serde_json::Value;

#[test]
fn the_readme_opens_with_the_commands_these_tests_run() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -- demo",
            "tests/install-tools && cargo test --workspace"
        ]
    );
}

#[test]
fn demo_on_the_default_data_dir_then_the_commands_it_suggests() {
    let cwd = tempfile::tempdir().unwrap();
    // `neonhub demo` as `cargo run --release -- demo` runs it: no options.
    let demo = neonhub()
        .arg("demo")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let text = stdout(&demo);
    assert!(text.contains("200 runs"), "{text}");
    assert!(
        text.contains(" succeeded ") && text.contains(" failed "),
        "{text}"
    );
    assert!(
        text.contains("Latest failures (one per agent and kind of error):"),
        "{text}"
    );
    assert!(
        text.contains("is not a phone number"),
        "an invalid number fails: {text}"
    );
    for agent in [
        "content", "email", "sms", "slack", "echo", "twilio", "gmail",
    ] {
        assert!(
            text.contains(&format!("\n{agent} ")),
            "{agent} in the report: {text}"
        );
    }
    assert!(text.contains("Where the data lives"), "{text}");
    let data = cwd.path().join("data");
    assert!(data.join("log").is_dir() && data.join(neonhub::PROJECTION_FILE).is_file());

    let run = |args: &[&str]| {
        stdout(
            &neonhub()
                .args(args)
                .current_dir(cwd.path())
                .output()
                .unwrap(),
        )
    };
    let audit = run(&["audit", "verify"]);
    assert!(
        audit.starts_with("ok: ") && audit.contains("head position"),
        "{audit}"
    );

    let failed: Value = serde_json::from_str(&run(&[
        "runs", "list", "--status", "failed", "--format", "json",
    ]))
    .unwrap();
    let failed = failed["runs"].as_array().unwrap();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|r| r["status"] == "failed"));

    let report: Value = serde_json::from_str(&run(&["report", "--format", "json"])).unwrap();
    let agents = report["agents"].as_array().unwrap();
    let runs: u64 = agents
        .iter()
        .filter(|a| a["kind"] == "agent")
        .map(|a| a["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(runs, 200);

    let sms = failed.iter().find(|r| r["target"] == "sms").unwrap();
    let show = run(&["runs", "show", sms["run_id"].as_str().unwrap()]);
    assert!(
        show.contains("run.started.v1") && show.contains("run.failed.v1"),
        "{show}"
    );
    assert!(
        show.contains("connector calls:") && show.contains("twilio"),
        "{show}"
    );

    let replay = run(&["replay", "--until-position", "9", "--out", "as-of-9.sqlite"]);
    assert!(replay.starts_with("rebuilt 10 events"), "{replay}");

    let one = run(&[
        "run",
        "echo",
        "--input",
        r#"{"hello": "world"}"#,
        "--format",
        "json",
    ]);
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["output"]["hello"], "world");

    // A second demo adds to the same log.
    let again = stdout(
        &neonhub()
            .args(["demo", "--runs", "20"])
            .current_dir(cwd.path())
            .output()
            .unwrap(),
    );
    assert!(again.contains("20 runs"));
    assert!(run(&["audit", "verify"]).starts_with("ok: "));
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let cwd = tempfile::tempdir().unwrap();
    let bad = neonhub()
        .args(["runs", "list", "--since", "someday"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.starts_with("error: --since") && err.trim().lines().count() == 1,
        "{err}"
    );
    let unknown = neonhub()
        .args(["run", "nobody"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no agent is named \"nobody\""));
}

#[test]
fn every_command_has_help_with_examples() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["demo", "--help"],
        &["run", "--help"],
        &["runs", "list", "--help"],
        &["runs", "show", "--help"],
        &["report", "--help"],
        &["replay", "--help"],
        &["audit", "verify", "--help"],
    ] {
        let help = neonhub().args(args).output().unwrap();
        let text = String::from_utf8(help.stdout).unwrap();
        assert!(
            help.status.success() && text.contains("Examples:"),
            "{args:?}: {text}"
        );
    }
}
