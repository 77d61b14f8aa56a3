//! SIGTERM under load: `neonhub serve` stops accepting, finishes the runs in
//! flight, lets the table catch up and exits 0; every run a client was told
//! about is in the table as it was told, and no run is left running.

use neonhub_projections::{RunQueries, RunStatus};
use neonhub_test_support::load::{Load, Told};
use neonhub_test_support::service::{ServeProcess, run_cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_runs_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(dir.path(), &[]);
    let load = Load::start(&serve.base, 16);
    load.wait_for_answers(200).await;
    let (code, stdout) = serve.terminate();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("stopped:"), "{stdout}");
    let told: Vec<Told> = load.told().await;
    let answered: Vec<&Told> = told.iter().filter(|t| t.status == Some(200)).collect();
    assert!(answered.len() >= 200);
    for t in &told {
        assert!(
            matches!(t.status, Some(200 | 503) | None),
            "a request got {:?} during shutdown",
            t.status
        );
    }

    let table = RunQueries::open(dir.path().join(neonhub::PROJECTION_FILE)).unwrap();
    for t in &answered {
        let run = table
            .get(t.run_id.parse().unwrap())
            .unwrap()
            .expect("a 200'd run is in the table");
        assert_eq!(Some(run.run.status.as_str()), t.run_status.as_deref());
    }
    let rows = table.all_runs().unwrap();
    assert!(
        rows.iter().all(|r| r.status != RunStatus::Running),
        "a run was left running"
    );
    let interrupted = rows
        .iter()
        .filter(|r| {
            r.error
                .as_ref()
                .is_some_and(|e| e.kind.as_str() == "interrupted")
        })
        .count();
    assert_eq!(interrupted, 0, "graceful shutdown finished every run");
    drop(table);

    let audit = run_cli(dir.path(), &["audit", "verify"]);
    let out = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(out.starts_with("ok: "), "{out}");
}
