//! A send that never left is not handed to an operator. Given `neonhub
//! serve` with live Twilio pointed at a local server, and a rate limit of three
//! SMS a minute per sending number, when a second SMS waits for its permit
//! and the process is killed with SIGKILL meanwhile, then after a restart on
//! the same data that SMS is sent, once, and its run succeeds: nothing of it
//! had left, so there is nothing in doubt and nothing to look up at Twilio.
//! (A step is recorded when its request is about to leave, after its
//! rate-limit permit; a crash before that leaves no record of it.)

use std::time::Duration;

use neonhub_test_support::service::{ServeProcess, get_run, sample};
use neonhub_test_support::twilio::{
    Reply, fake_twilio, is_lookup, live_twilio, sends_of, submit_sms,
};
use neonhub_test_support::wait_until_within;

/// One SMS every 20 s per number: the second waits (within its run's 30 s).
const PACED: [&str; 2] = ["--twilio-rate-per-number", "3/min"];

#[actix_rt::test]
async fn a_send_killed_while_it_waits_for_its_permit_is_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = fake_twilio(|_| Reply::Accept(Duration::ZERO));
    let client = reqwest::Client::new();
    let serve = ServeProcess::spawn_with(dir.path(), &PACED, live_twilio(&vendor.base_url));
    let (first, second) = (
        "01932c4e-7c1a-7000-8000-0000000000b1",
        "01932c4e-7c1a-7000-8000-0000000000b2",
    );
    submit_sms(&serve.base, first, "first").await;
    wait_until_within(
        "the first SMS to reach Twilio",
        Duration::from_secs(10),
        || {
            let sent = sends_of(&vendor, "first");
            async move { sent == 1 }
        },
    )
    .await;
    submit_sms(&serve.base, second, "second").await;
    wait_until_within(
        "the second SMS to wait for its permit",
        Duration::from_secs(10),
        || {
            let (client, base) = (client.clone(), serve.base.clone());
            async move {
                let metrics = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                sample(&metrics, "neonhub_rate_limit_waiting{connector=\"twilio\"}") == 1.0
            }
        },
    )
    .await;
    serve.kill();
    assert_eq!(sends_of(&vendor, "second"), 0, "it waited: nothing left");

    let serve = ServeProcess::spawn_with(dir.path(), &PACED, live_twilio(&vendor.base_url));
    wait_until_within("the resumed run to end", Duration::from_secs(10), || {
        let base = serve.base.clone();
        async move { get_run(&base, second).await["status"] != "running" }
    })
    .await;
    let resumed = get_run(&serve.base, second).await;

    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(resumed["attempts"], 2, "a resumed attempt: {resumed}");
    assert_eq!(
        sends_of(&vendor, "second"),
        1,
        "sent once, after the restart"
    );
    assert_eq!(
        sends_of(&vendor, "first"),
        1,
        "the first was not sent again"
    );
    assert_eq!(
        vendor.count(is_lookup),
        0,
        "nothing was in doubt, so nothing was looked up"
    );
    assert_eq!(get_run(&serve.base, first).await["status"], "succeeded");
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
