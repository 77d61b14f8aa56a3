//! Given an orchestrator bounded to two runs in flight, when a third run is
//! submitted while two are running, then it is refused at once with
//! `Overloaded` and nothing is recorded for it; once a slot frees up, runs
//! are accepted again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neonhub_actors::{AgentOptions, Error, GetStats, OrchestratorBuilder, SubmitRun};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn a_full_orchestrator_refuses_at_once_and_records_nothing() {
    let store = support::memory_store();
    let gated = support::Gated::new();
    let (gate, entered) = (Arc::clone(&gated.gate), Arc::clone(&gated.entered));
    let orchestrator = OrchestratorBuilder::new(store.clone())
        .agent(move || gated.clone(), AgentOptions::default())
        .max_in_flight(2)
        .start()
        .unwrap();

    let a = tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("a"))));
    let b = tokio::spawn(orchestrator.send(SubmitRun::agent("gated", json!("b"))));
    support::wait_until_within("two runs inside the agent", Duration::from_secs(5), || {
        let entered = Arc::clone(&entered);
        async move { entered.load(Ordering::SeqCst) == 2 }
    })
    .await;
    let head = store.head().await.unwrap();
    let stats = orchestrator.send(GetStats).await.unwrap();
    assert_eq!((stats.in_flight, stats.max_in_flight), (2, 2));

    let refused = orchestrator
        .send(SubmitRun::agent("gated", json!("c")))
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(Error::Overloaded { limit: 2 })),
        "{refused:?}"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "nothing recorded for the refused run"
    );
    assert_eq!(entered.load(Ordering::SeqCst), 2);

    gate.add_permits(2);
    assert!(a.await.unwrap().unwrap().unwrap().is_success());
    assert!(b.await.unwrap().unwrap().unwrap().is_success());
    assert_eq!(orchestrator.send(GetStats).await.unwrap().in_flight, 0);

    gate.add_permits(1);
    let accepted = orchestrator
        .send(SubmitRun::agent("gated", json!("d")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.result, Ok(json!("d")));
}
