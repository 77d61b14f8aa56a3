//! The sample run events the benches share: an `email` agent run as a
//! service records it.

#![allow(dead_code, unreachable_pub)]

use neonhub_events::{RunEvent, RunId, RunKind, RunStarted, RunSucceeded, Timestamp};
use serde_json::json;
use uuid::Uuid;

/// A realistic first event of an agent run: a `RunStarted` with a small
/// JSON input (about 250 bytes of MessagePack).
pub fn run_started(run_id: RunId, correlation_id: Uuid) -> RunEvent {
    RunEvent::Started(RunStarted {
        run_id,
        kind: RunKind::Agent,
        target: "email".into(),
        operation: "run".into(),
        intent: Some("email.send".into()),
        input: json!({
            "to": "alice@example.com",
            "subject": "Q3 report",
            "body": "Hi Alice, the Q3 figures are attached. Bob",
        }),
        attempt: 1,
        parent_run_id: None,
        correlation_id,
        started_at: Timestamp::now(),
    })
}

/// Its successful end.
pub fn run_succeeded(run_id: RunId) -> RunEvent {
    RunEvent::Succeeded(RunSucceeded {
        run_id,
        attempt: 1,
        output: json!({"message_id": "<20261124.1234@example.com>", "accepted": true}),
        duration_micros: 182_345,
        finished_at: Timestamp::now(),
    })
}
