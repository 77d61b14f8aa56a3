//! A send the vendor refused is not handed to an operator after a crash.
//! Given `neonhub serve` with live Twilio pointed at a local server that
//! answers the first send of an SMS with 429 (`Retry-After: 4`), when the
//! connector waits to send it again and the process is killed with SIGKILL
//! meanwhile, then after a restart on the same data the SMS is sent again,
//! once, no sooner than Twilio asked, and its run succeeds: the refusal
//! certainly had no effect, so there is nothing in doubt and nothing to look
//! up at Twilio. (A failed request that will be retried is recorded at once,
//! with when to retry, before the wait; the next request's `RunStarted` only
//! when it is about to leave.)

use std::time::Duration;

use neonhub_events::RunId;
use neonhub_test_support::service::{ServeProcess, get_run};
use neonhub_test_support::twilio::{
    Reply, fake_twilio, is_lookup, live_twilio, sends_of, submit_sms,
};
use neonhub_test_support::wait_until_within;

/// What the fake asks for with its 429.
const RETRY_AFTER: Duration = Duration::from_secs(4);

#[actix_rt::test]
async fn a_send_killed_while_it_waits_to_retry_is_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The first send of each SMS is paced away; every later one is taken.
    let refused = std::sync::Mutex::new(std::collections::HashSet::new());
    let vendor = fake_twilio(move |sms| {
        if refused.lock().unwrap().insert(sms.body.clone()) {
            Reply::ComeBackIn(RETRY_AFTER)
        } else {
            Reply::Accept(Duration::ZERO)
        }
    });
    let serve = ServeProcess::spawn_with(dir.path(), &[], live_twilio(&vendor.base_url));
    let run_id = "01932c4e-7c1a-7000-8000-0000000000c1";
    submit_sms(&serve.base, run_id, "later").await;
    wait_until_within(
        "the first send to reach Twilio",
        Duration::from_secs(10),
        || {
            let sent = sends_of(&vendor, "later");
            async move { sent == 1 }
        },
    )
    .await;
    // The 429 is answered at once; the connector now waits 4 s to retry,
    // the refusal recorded (and in the table) before that wait.
    let step_id = run_id.parse::<RunId>().unwrap().step("twilio.send_sms#1");
    wait_until_within(
        "the refusal to be recorded while the step waits to retry",
        Duration::from_secs(5),
        || {
            let (base, step_id) = (serve.base.clone(), step_id.to_string());
            async move { get_run(&base, &step_id).await["error"]["kind"] == "rate_limited" }
        },
    )
    .await;
    serve.kill();
    assert_eq!(sends_of(&vendor, "later"), 1, "it waited: no retry left");

    let serve = ServeProcess::spawn_with(dir.path(), &[], live_twilio(&vendor.base_url));
    wait_until_within("the resumed run to end", Duration::from_secs(15), || {
        let base = serve.base.clone();
        async move { get_run(&base, run_id).await["status"] != "running" }
    })
    .await;
    let resumed = get_run(&serve.base, run_id).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(resumed["attempts"], 2, "a resumed attempt: {resumed}");
    assert_eq!(
        sends_of(&vendor, "later"),
        2,
        "the refused send, then one after the restart"
    );
    assert_eq!(
        vendor.count(is_lookup),
        0,
        "nothing was in doubt, so nothing was looked up"
    );
    let sends: Vec<_> = vendor
        .seen()
        .into_iter()
        .filter(|s| !is_lookup(s))
        .collect();
    let waited = sends[1].at.duration_since(sends[0].at);
    assert!(
        waited >= RETRY_AFTER - Duration::from_millis(100),
        "sent again {waited:?} after the 429, sooner than its Retry-After: the crash cut the wait short"
    );
    let step = get_run(&serve.base, &step_id.to_string()).await;
    assert_eq!(step["status"], "succeeded", "{step}");
    assert_eq!(
        step["attempts"], 2,
        "the refused request, then the one after the restart: {step}"
    );
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
