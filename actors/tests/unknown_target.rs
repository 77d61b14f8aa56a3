//! Given an orchestrator with the built-in agents, when a run names an
//! unknown agent or intent, then it is refused with a typed error and
//! nothing is recorded.

use neonhub_actors::{Error, SubmitRun};
use neonhub_events::Position;
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn unknown_agents_and_intents_are_typed_errors_that_record_nothing() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);

    let by_name = orchestrator
        .send(SubmitRun::agent("nobody", json!({})))
        .await
        .unwrap();
    assert!(
        matches!(&by_name, Err(Error::UnknownAgent(name)) if name == "nobody"),
        "{by_name:?}"
    );

    let by_intent = orchestrator
        .send(SubmitRun::intent("fax.send", json!({})))
        .await
        .unwrap();
    assert!(
        matches!(&by_intent, Err(Error::UnknownIntent(intent)) if intent == "fax.send"),
        "{by_intent:?}"
    );

    assert_eq!(store.head().await.unwrap(), Position::START);
}
