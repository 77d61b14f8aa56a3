//! Given runs already in the store, when an actor subscribes a Recipient
//! from a position, then it receives every run event from there in log
//! order (catch-up), then each new one as it is appended (live), never one
//! twice; and the subscription ends when the recipient stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use neonhub_actors::{RunEventNotice, SubmitRun, SubscribeRuns};
use neonhub_events::{Position, RunEvent};
use neonhub_test_support as support;
use serde_json::json;

struct Collector {
    seen: Arc<Mutex<Vec<RunEventNotice>>>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RunEventNotice> for Collector {
    type Result = ();

    fn handle(&mut self, msg: RunEventNotice, _ctx: &mut Context<Self>) {
        self.seen.lock().unwrap().push(msg);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Collector {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix::test]
async fn a_recipient_catches_up_from_a_position_then_follows_live() {
    let store = support::memory_store();
    let orchestrator = support::builtin_orchestrator(&store);
    let first = orchestrator
        .send(SubmitRun::intent("echo", json!(1)))
        .await
        .unwrap()
        .unwrap();
    let second = orchestrator
        .send(SubmitRun::intent("echo", json!(2)))
        .await
        .unwrap()
        .unwrap();
    let stored = support::all(&store).await;
    assert_eq!(stored.len(), 4);
    let from = stored[2].position;
    assert_eq!(stored[2].stream, second.run_id.stream());

    let seen = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector {
        seen: Arc::clone(&seen),
    }
    .start();
    let handle = orchestrator
        .send(SubscribeRuns {
            from,
            recipient: collector.clone().recipient(),
        })
        .await
        .unwrap()
        .unwrap();
    let count = |n: usize| {
        let seen = Arc::clone(&seen);
        move || {
            let seen = Arc::clone(&seen);
            async move { seen.lock().unwrap().len() >= n }
        }
    };
    support::wait_until_within("the catch-up events", Duration::from_secs(5), count(2)).await;

    let third = orchestrator
        .send(SubmitRun::intent("echo", json!(3)))
        .await
        .unwrap()
        .unwrap();
    support::wait_until_within("the live events", Duration::from_secs(5), count(4)).await;

    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "no event twice: {got:?}");
    let all = support::all(&store).await;
    let expected: Vec<Position> = all[2..].iter().map(|r| r.position).collect();
    assert_eq!(got.iter().map(|n| n.position).collect::<Vec<_>>(), expected);
    let runs: Vec<_> = got.iter().map(|n| n.event.run_id()).collect();
    assert_eq!(
        runs,
        [second.run_id, second.run_id, third.run_id, third.run_id]
    );
    assert!(!runs.contains(&first.run_id));
    assert!(matches!(got[0].event, RunEvent::Started(_)));
    assert!(matches!(&got[3].event, RunEvent::Succeeded(s) if s.output == json!(3)));
    assert_eq!(got[3].stream, third.run_id.stream());
    assert_eq!(got[3].revision.0, 1);
    assert_eq!(
        got[3].metadata.correlation_id,
        Some(*third.run_id.as_uuid())
    );

    // When the recipient stops, the subscription ends at its next event.
    collector.send(Stop).await.unwrap();
    orchestrator
        .send(SubmitRun::intent("echo", json!(4)))
        .await
        .unwrap()
        .unwrap();
    support::wait_until_within("the subscription to end", Duration::from_secs(5), || {
        let finished = handle.is_finished();
        async move { finished }
    })
    .await;
}
