//! `GET /v1/events?from=P` delivers every event from P on, stored ones then
//! live ones, in log order with no gap or repeat; `Last-Event-ID` resumes.

use neonhub_test_support::service::InProcess;
use serde_json::{Value, json};

/// Reads SSE frames from `response` until `count` events have arrived.
async fn read_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    count: usize,
) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < count {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            if let Some(data) = data {
                let event: Value = serde_json::from_str(data).unwrap();
                let id = frame.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
                assert_eq!(id, event["position"].to_string());
                events.push(event);
            }
        }
        if events.len() >= count {
            break;
        }
        let chunk = tokio::time::timeout(neonhub_test_support::PATIENCE, response.chunk())
            .await
            .expect("the feed went quiet")
            .unwrap()
            .expect("the feed ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    events
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

#[actix_rt::test]
async fn the_feed_delivers_events_in_order_from_a_position() {
    let hub = InProcess::start().await;
    for i in 0..10 {
        let (status, _) = hub
            .post_run(&json!({"agent": "echo", "input": {"i": i}}))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(hub.head().await, 20);
    let mut feed = hub
        .client
        .get(hub.url("/v1/events?from=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status().as_u16(), 200);
    assert!(
        feed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let stored = read_events(&mut feed, &mut buffer, 15).await;
    assert_eq!(positions(&stored), (5..20).collect::<Vec<_>>());
    assert_eq!(stored[0]["type"], "run.succeeded.v1");
    assert!(stored[0]["data"]["output"]["i"].is_number());
    assert_eq!(stored[1]["type"], "run.started.v1");

    // Live: runs submitted now arrive after the stored ones, in order.
    let submit = async {
        for i in 10..20 {
            let (status, _) = hub
                .post_run(&json!({"intent": "slack.notify", "input": {"channel": "#x", "text": format!("n{i}")}}))
                .await;
            assert_eq!(status, 200);
        }
    };
    let (live, ()) = tokio::join!(read_events(&mut feed, &mut buffer, 40), submit);
    assert_eq!(positions(&live), (20..60).collect::<Vec<_>>());
    let streams: Vec<&str> = live.iter().map(|e| e["stream"].as_str().unwrap()).collect();
    assert!(streams.iter().all(|s| s.starts_with("run-")));
    drop(feed);

    // Resuming after event 41 with Last-Event-ID gives 42 onwards.
    let mut resumed = hub
        .client
        .get(hub.url("/v1/events"))
        .header("last-event-id", "41")
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let rest = read_events(&mut resumed, &mut buffer, 18).await;
    assert_eq!(positions(&rest), (42..60).collect::<Vec<_>>());
    drop(resumed);
    hub.stop().await;
}

/// A browser's `EventSource` reconnects with `Last-Event-ID` and the URL it
/// was opened with: the header wins over `?from=`, so the reconnect resumes
/// instead of replaying the log; an id no position can follow is refused,
/// not wrapped to 0.
#[actix_rt::test]
async fn last_event_id_wins_over_from_and_is_checked() {
    let hub = InProcess::start().await;
    for i in 0..5 {
        let (status, _) = hub
            .post_run(&json!({"agent": "echo", "input": {"i": i}}))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(hub.head().await, 10);
    let mut resumed = hub
        .client
        .get(hub.url("/v1/events?from=0"))
        .header("last-event-id", "6")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 200);
    let mut buffer = String::new();
    let rest = read_events(&mut resumed, &mut buffer, 3).await;
    assert_eq!(positions(&rest), vec![7, 8, 9]);
    drop(resumed);

    for id in ["18446744073709551615", "10", "99"] {
        let response = hub
            .client
            .get(hub.url("/v1/events"))
            .header("last-event-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "Last-Event-ID {id}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("Last-Event-ID"), "{message}");
    }
    assert_eq!(hub.head().await, 10, "refused feeds appended nothing");
    hub.stop().await;
}
