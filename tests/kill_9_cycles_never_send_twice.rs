//! At most one send per SMS across many SIGKILLs. One data directory, `neonhub
//! serve` with live Twilio pointed at a local fake that answers some sends at
//! once, some late, some never, refuses some, and paces some away once (429,
//! `Retry-After: 1`, nothing kept; chosen per run by a seeded generator). Each cycle starts the service, which resumes what the last
//! kill cut off, submits a few `sms` runs and SIGKILLs it at a varying moment:
//! right after the acknowledgements, a random time into the submissions, or
//! just after a send reached the vendor. After the last cycle one more start
//! lets every run end. Then: the vendor got at most one request per SMS body
//! that may have had an effect (a 429 had none), every acknowledged run exists, and every run (agent or connector) ended
//! `succeeded`, or `failed` with `in_doubt`, or `failed` with `connector`
//! only where the fake refused that very SMS; never `interrupted`, never
//! still running.
//!
//! Twilio's pacing per sending number (live default: one SMS a second) is
//! off: every SMS here goes from one number, so after a hundred short cycles
//! the runs would queue for minutes and the last ones fail `rate_limited` at
//! their deadline, which says nothing about crashes. A kill while a send waits
//! for its permit is `kill_9_while_a_send_waits_for_its_permit.rs`.
//!
//! `NEONHUB_CRASH_CYCLES` (default 100) sets the cycles, `NEONHUB_CRASH_SEED`
//! the generator's seed (printed, to replay a failure). The service runs with
//! `--max-resumes 1000`: past the bound a run is closed as `interrupted` on
//! purpose (`actors/tests/resume_interrupted_runs.rs` covers that), and a
//! run cut off in several cycles in a row must not end that way here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::{ServeProcess, run_cli};
use neonhub_test_support::twilio::{Reply, Sms, fake_twilio, is_lookup, live_twilio};
use neonhub_test_support::wait_until_within;
use serde_json::{Value, json};

const DEFAULT_CYCLES: usize = 100;
const DEFAULT_SEED: u64 = 0x5eed_0009;
const RUNS_PER_CYCLE: usize = 3;
/// Longer than the whole test: an answer that never comes.
const NEVER: Duration = Duration::from_secs(3600);

/// How the fake vendor treats one SMS; written into its body, so the fake
/// reads it from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// 201 at once.
    AtOnce,
    /// 201 after this many milliseconds.
    Late(u64),
    /// No answer (the connector's 10 s timeout ends the step `in_doubt`).
    Never,
    /// 400, a permanent refusal (the run fails with `connector`).
    Refuse,
    /// 429 with `Retry-After: 1` to the first request, keeping nothing (the
    /// step records it and waits to retry: a kill then must not put it in
    /// doubt); 201 at once to the next.
    PacedOnce,
}

impl Answer {
    fn word(self) -> String {
        match self {
            Answer::AtOnce => "at-once".to_owned(),
            Answer::Late(ms) => format!("late-{ms}"),
            Answer::Never => "never".to_owned(),
            Answer::Refuse => "refuse".to_owned(),
            Answer::PacedOnce => "paced-once".to_owned(),
        }
    }

    fn parse(body: &str) -> Option<Self> {
        let word = body.rsplit(' ').next()?;
        match word {
            "at-once" => Some(Answer::AtOnce),
            "never" => Some(Answer::Never),
            "refuse" => Some(Answer::Refuse),
            "paced-once" => Some(Answer::PacedOnce),
            _ => word.strip_prefix("late-")?.parse().ok().map(Answer::Late),
        }
    }
}

/// splitmix64: the same seed gives the same cycles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn answer(&mut self) -> Answer {
        match self.below(10) {
            0..=2 => Answer::AtOnce,
            3..=5 => Answer::Late(50 + self.below(400)),
            6 => Answer::PacedOnce,
            7 | 8 => Answer::Never,
            _ => Answer::Refuse,
        }
    }
}

/// When a cycle's SIGKILL comes.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// As soon as every submission has been answered.
    AfterAcks,
    /// This many milliseconds after the submissions began (some may be cut
    /// off before their answer).
    After(u64),
    /// This many milliseconds after a send of this cycle reached the vendor.
    AfterSend(u64),
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not valid"))
        })
        .unwrap_or(default)
}

fn serve(dir: &std::path::Path, vendor: &TestServer) -> ServeProcess {
    let args = ["--max-resumes", "1000", "--twilio-rate-per-number", "off"];
    ServeProcess::spawn_with(dir, &args, |command: &mut Command| {
        live_twilio(&vendor.base_url)(command);
        command.env("NEONHUB_LOG", "error");
    })
}

/// A fake Twilio that answers each SMS as its body says; `paced` collects
/// the bodies it answered 429 (once each).
fn vendor(paced: Arc<Mutex<HashSet<String>>>) -> TestServer {
    fake_twilio(
        move |sms| match sms.body.as_deref().and_then(Answer::parse) {
            Some(Answer::PacedOnce) => {
                let body = sms.body.clone().unwrap_or_default();
                if paced.lock().unwrap().insert(body) {
                    Reply::ComeBackIn(Duration::from_secs(1))
                } else {
                    Reply::Accept(Duration::ZERO)
                }
            }
            Some(Answer::AtOnce) => Reply::Accept(Duration::ZERO),
            Some(Answer::Late(ms)) => Reply::Accept(Duration::from_millis(ms)),
            Some(Answer::Never) => Reply::Accept(NEVER),
            Some(Answer::Refuse) | None => Reply::Refuse,
        },
    )
}

/// Requests per SMS body the vendor received that may have had an effect:
/// all but the one it answered 429, for a body in `paced`.
fn sends(vendor: &TestServer, paced: &HashSet<String>) -> HashMap<String, usize> {
    let mut sends: HashMap<String, usize> = HashMap::new();
    for seen in vendor.seen() {
        if is_lookup(&seen) {
            continue;
        }
        let body = Sms::of(&seen)
            .and_then(|sms| sms.body)
            .unwrap_or_else(|| panic!("not a send: {seen:?}"));
        *sends.entry(body).or_insert(0) += 1;
    }
    for body in paced {
        // It got the request it answered 429.
        sends.entry(body.clone()).and_modify(|n| *n -= 1);
    }
    sends.retain(|_, n| *n > 0);
    sends
}

/// One submission: its run id and body, and whether it was acknowledged.
struct Submitted {
    run_id: String,
    body: String,
    acknowledged: bool,
}

async fn submit(client: &reqwest::Client, base: &str, run_id: String, body: String) -> Submitted {
    let request = json!({"intent": "sms.send", "run_id": run_id,
                         "input": {"to": "+15550001111", "body": body}});
    let answer = client
        .post(format!("{base}/v1/runs?wait=false"))
        .json(&request)
        .send()
        .await;
    let acknowledged = match answer {
        Ok(response) if response.status().is_success() => response
            .json::<Value>()
            .await
            .is_ok_and(|v| v["run_id"] == run_id.as_str()),
        _ => false,
    };
    Submitted {
        run_id,
        body,
        acknowledged,
    }
}

/// Every row of the AgentRun table, through the API's pages.
async fn all_runs(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/runs?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        runs.extend(page["runs"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return runs,
        }
    }
}

#[actix_rt::test]
async fn kill_9_cycles_never_send_an_sms_twice() {
    let cycles: usize = env_or("NEONHUB_CRASH_CYCLES", DEFAULT_CYCLES);
    let seed: u64 = env_or("NEONHUB_CRASH_SEED", DEFAULT_SEED);
    let began = Instant::now();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let paced = Arc::new(Mutex::new(HashSet::new()));
    let vendor = vendor(Arc::clone(&paced));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut submitted: Vec<Submitted> = Vec::new();
    let mut answers: HashMap<String, Answer> = HashMap::new();

    for cycle in 0..cycles {
        let serve = serve(dir.path(), &vendor);
        let kill = match rng.below(4) {
            0 => Kill::AfterAcks,
            1 => Kill::After(rng.below(10)),
            2 => Kill::After(rng.below(600)),
            _ => Kill::AfterSend(rng.below(30)),
        };
        let hits_before = vendor.hits();
        let base = serve.base.clone();
        let mut posts = Vec::new();
        for n in 0..RUNS_PER_CYCLE {
            let answer = rng.answer();
            let body = format!("cycle {cycle} sms {n} {}", answer.word());
            answers.insert(body.clone(), answer);
            let run_id = format!("01932c4e-7c1a-7000-8000-{:06x}{:06x}", cycle, n);
            posts.push(submit(&client, &base, run_id, body));
        }
        let submissions = join_all(posts);
        let results = match kill {
            Kill::AfterAcks => {
                let results = submissions.await;
                serve.kill();
                results
            }
            Kill::After(ms) => {
                let killer = async move {
                    actix_rt::time::sleep(Duration::from_millis(ms)).await;
                    serve.kill();
                };
                futures_util::future::join(submissions, killer).await.0
            }
            Kill::AfterSend(ms) => {
                let results = submissions.await;
                // A refused or at-once send may be answered already; either
                // way the kill lands at most a few ms after it arrived.
                wait_until_within("a send of this cycle", Duration::from_secs(10), || {
                    let hits = vendor.hits();
                    async move { hits > hits_before }
                })
                .await;
                actix_rt::time::sleep(Duration::from_millis(ms)).await;
                serve.kill();
                results
            }
        };
        submitted.extend(results);
    }

    // One more start: it resumes what the last kill cut off; wait until no
    // run, agent or connector, is running (a send that is never answered
    // ends at the connector's 10 s timeout).
    let serve = serve(dir.path(), &vendor);
    wait_until_within("every run to end", Duration::from_secs(60), || {
        let (client, base) = (client.clone(), serve.base.clone());
        async move {
            let running: Value = client
                .get(format!("{base}/v1/runs?status=running&limit=1"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            running["runs"].as_array().is_some_and(Vec::is_empty)
        }
    })
    .await;
    let runs = all_runs(&client, &serve.base).await;
    let paced = paced.lock().unwrap().clone();
    let sends = sends(&vendor, &paced);

    // 1. At most one request per SMS, across every cycle.
    let twice: BTreeMap<&String, &usize> = sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} SMS sent more than once, among them {:?}",
        twice.len(),
        twice.iter().take(8).collect::<Vec<_>>()
    );
    for body in sends.keys() {
        assert!(
            answers.contains_key(body),
            "a send nobody asked for: {body}"
        );
    }

    // 2. No acknowledged run is lost.
    let acknowledged: Vec<&Submitted> = submitted.iter().filter(|s| s.acknowledged).collect();
    for s in &acknowledged {
        let response = client
            .get(format!("{}/v1/runs/{}", serve.base, s.run_id))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "acknowledged run {} is missing",
            s.run_id
        );
    }

    // 3. Every run ended succeeded or in doubt, or failed where the fake
    //    refused that very SMS; the body of each run is its input's (agent)
    //    or its request's (connector).
    let by_id: HashMap<&str, &Submitted> =
        submitted.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut agent_runs = HashSet::new();
    let (mut resumed, mut resumed_and_succeeded, mut in_doubt_after_a_send) = (0, 0, 0);
    let (mut reconciled, mut paced_runs, mut paced_succeeded) = (0, 0, 0);
    // Paced-once steps in doubt, and those of them in doubt on the request
    // answered 429 (the kill came before that answer was recorded).
    let (mut paced_in_doubt, mut paced_in_doubt_first) = (0, 0);
    for run in &runs {
        let kind = run["kind"].as_str().unwrap();
        let body = run["input"]["body"]
            .as_str()
            .unwrap_or_else(|| panic!("{run}"));
        let answer = answers[body];
        let sent = sends.get(body).copied().unwrap_or(0);
        if kind == "agent" {
            let run_id = run["run_id"].as_str().unwrap();
            let s = by_id
                .get(run_id)
                .unwrap_or_else(|| panic!("a run nobody submitted: {run}"));
            assert_eq!(s.body, body, "{run}");
            agent_runs.insert(run_id.to_owned());
            if run["attempts"].as_u64().unwrap() > 1 {
                resumed += 1;
            }
        }
        let outcome = match (
            run["status"].as_str().unwrap(),
            run["error"]["kind"].as_str(),
        ) {
            // A resumed run that succeeded keeps its interrupted attempt's
            // error beside the status, as the table does.
            ("succeeded", _) => {
                assert_eq!(sent, 1, "succeeded without one send: {run}");
                if kind == "agent" && run["attempts"].as_u64().unwrap() > 1 {
                    resumed_and_succeeded += 1;
                }
                assert_ne!(answer, Answer::Refuse, "{run}");
                if run["output"]["reconciled"] == true {
                    // Found at the vendor after it was cut off on the wire.
                    reconciled += 1;
                } else if kind == "connector" {
                    assert_ne!(answer, Answer::Never, "succeeded unanswered: {run}");
                }
                "succeeded"
            }
            ("failed", Some("in_doubt")) => {
                if sent == 1 && kind == "agent" {
                    in_doubt_after_a_send += 1;
                }
                "in_doubt"
            }
            ("failed", Some("connector")) => {
                assert_eq!(
                    answer,
                    Answer::Refuse,
                    "a failure the fake did not cause: {run}"
                );
                assert_eq!(sent, 1, "refused without a request: {run}");
                "refused"
            }
            _ => panic!("a run ended neither succeeded nor in doubt nor refused: {run}"),
        };
        if kind == "agent" && answer == Answer::PacedOnce {
            paced_runs += 1;
            paced_succeeded += usize::from(outcome == "succeeded");
        }
        if kind == "connector" && answer == Answer::PacedOnce && outcome == "in_doubt" {
            paced_in_doubt += 1;
            paced_in_doubt_first += usize::from(run["attempts"] == 1);
        }
        *tally.entry(format!("{kind} {outcome}")).or_insert(0) += 1;
    }
    for s in &acknowledged {
        assert!(agent_runs.contains(&s.run_id), "no row for {}", s.run_id);
    }
    if cycles >= 10 {
        // Else this test proved nothing about sends cut off on the wire.
        assert!(
            in_doubt_after_a_send + reconciled > 0,
            "no kill cut a send off: {tally:?}"
        );
        assert!(resumed > 0, "no run was resumed: {tally:?}");
    }
    eprintln!(
        "{cycles} cycles (seed {seed:#x}) in {:.1} s: {} submitted, {} acknowledged, {} agent \
         runs recorded ({resumed} resumed, of which {resumed_and_succeeded} succeeded; \
         {in_doubt_after_a_send} in doubt after reaching the vendor; {reconciled} steps found at \
         the vendor after a cut; {paced_succeeded} of {paced_runs} paced-once runs succeeded, \
         {paced_in_doubt} of their steps in doubt, {paced_in_doubt_first} on the request answered \
         429), {} \
         sends for {} SMS bodies ({} of them paced once); {tally:?}",
        began.elapsed().as_secs_f64(),
        submitted.len(),
        acknowledged.len(),
        agent_runs.len(),
        sends.values().sum::<usize>(),
        answers.len(),
        paced.len(),
    );

    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
    let audit = run_cli(dir.path(), &["audit", "verify"]);
    assert!(
        audit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}
