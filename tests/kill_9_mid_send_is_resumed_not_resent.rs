//! A side effect happens at most once across a crash. Given `neonhub serve`
//! with live Twilio pointed at a local server that receives the SMS and never
//! answers it, when the process is killed with SIGKILL while the send is on
//! the wire and started again on the same data, then the run is resumed (not
//! closed as `interrupted`), the send is not made again but looked up among
//! Twilio's messages to the number, where it is found: the run succeeds with
//! what Twilio reports. (Not found, the run would end `in_doubt`; see
//! `actors/tests/in_doubt_steps_are_reconciled_with_the_vendor.rs`.)

use std::time::Duration;

use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::{ServeProcess, get_run};
use neonhub_test_support::twilio::{Reply, fake_twilio, is_lookup, live_twilio, submit_sms};
use neonhub_test_support::wait_until_within;

#[actix_rt::test]
async fn a_send_cut_off_by_kill_9_is_not_sent_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Twilio: a send is kept and never answered; a list answers at once.
    let vendor = fake_twilio(|_| Reply::Accept(Duration::from_secs(300)));
    let posts = |vendor: &TestServer| vendor.count(|s| s.method == "POST");
    let serve = ServeProcess::spawn_with(dir.path(), &[], live_twilio(&vendor.base_url));
    let run_id = "01932c4e-7c1a-7000-8000-0000000000aa";
    submit_sms(&serve.base, run_id, "only once").await;
    wait_until_within("the SMS to reach Twilio", Duration::from_secs(10), || {
        let hits = posts(&vendor);
        async move { hits == 1 }
    })
    .await;
    serve.kill();

    let serve = ServeProcess::spawn_with(dir.path(), &[], live_twilio(&vendor.base_url));
    wait_until_within("the resumed run to end", Duration::from_secs(10), || {
        let base = serve.base.clone();
        async move { get_run(&base, run_id).await["status"] != "running" }
    })
    .await;
    let run = get_run(&serve.base, run_id).await;

    assert_eq!(
        posts(&vendor),
        1,
        "the SMS was sent again after the restart"
    );
    assert_eq!(vendor.count(is_lookup), 1, "it was looked up");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["sid"], "SM1", "{run}");
    assert_eq!(run["attempts"], 2, "a resumed attempt: {run}");
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
