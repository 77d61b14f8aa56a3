//! Given the built-in agents and mock connectors, when each intent is run,
//! then the answers are deterministic (same input, same output) and the
//! agents are listed with their intents.

use neonhub_actors::{ListAgents, SubmitRun};
use neonhub_test_support as support;
use serde_json::json;

#[actix::test]
async fn the_builtin_agents_answer_deterministically() {
    let (_dir, store) = support::store();
    let orchestrator = support::mock_orchestrator(&store);

    let agents = orchestrator.send(ListAgents).await.unwrap();
    let listed: Vec<(String, Vec<String>)> =
        agents.into_iter().map(|a| (a.name, a.intents)).collect();
    let expected = [
        ("content", "content.generate"),
        ("echo", "echo"),
        ("email", "email.send"),
        ("slack", "slack.notify"),
        ("sms", "sms.send"),
    ];
    assert_eq!(
        listed,
        expected
            .map(|(n, i)| (n.to_owned(), vec![i.to_owned()]))
            .to_vec()
    );

    let requests = [
        (
            "content.generate",
            json!({"topic": "Neon Boots", "audience": "runners", "tone": "professional", "channel": "blog"}),
        ),
        (
            "email.send",
            json!({"to": "ada@example.com", "topic": "Neon Boots"}),
        ),
        (
            "sms.send",
            json!({"to": "+15005550006", "topic": "Neon Boots", "tone": "urgent"}),
        ),
        (
            "slack.notify",
            json!({"channel": "C1", "topic": "Neon Boots", "tone": "playful"}),
        ),
    ];
    for (intent, input) in requests {
        let a = orchestrator
            .send(SubmitRun::intent(intent, input.clone()))
            .await
            .unwrap()
            .unwrap();
        let b = orchestrator
            .send(SubmitRun::intent(intent, input))
            .await
            .unwrap()
            .unwrap();
        assert!(a.is_success(), "{intent}: {a:?}");
        assert_eq!(a.result, b.result, "{intent} is deterministic");
    }

    let content = orchestrator
        .send(SubmitRun::intent(
            "content.generate",
            json!({"topic": "Neon Boots", "audience": "runners", "tone": "professional"}),
        ))
        .await
        .unwrap()
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        content["title"],
        json!("Introducing Neon Boots for runners")
    );
    assert_eq!(
        content["body"],
        json!(
            "Hi runners,\n\nNeon Boots helps runners work faster, with less effort and fewer errors.\n\nThe neonhub team"
        )
    );
    let slack = orchestrator
        .send(SubmitRun::intent(
            "slack.notify",
            json!({"channel": "C1", "text": "hi"}),
        ))
        .await
        .unwrap()
        .unwrap()
        .result
        .unwrap();
    assert_eq!(slack["channel"], json!("C1"));
    assert!(slack["ts"].as_str().unwrap().contains('.'));
    let rejected = orchestrator
        .send(SubmitRun::intent(
            "content.generate",
            json!({"tone": "friendly"}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rejected.result.unwrap_err().kind,
        neonhub_events::ErrorKind::Rejected
    );
}
