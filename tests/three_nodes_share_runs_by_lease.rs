//! Several nodes on one EventStoreDB own their runs under leases. Given
//! three `neonhub serve --store eventstoredb` nodes (`a`, `b`, `c`, a 2 s
//! lease) on the in-process test server, each with SMS runs whose sends a
//! local Twilio holds for 8 s, and echo runs coming in all along: when `c` is
//! killed with SIGKILL, then `a` and `b` resume each of `c`'s runs exactly
//! once, within the lease plus 5 s, by looking the cut-off send up rather
//! than sending it again, and never touch each other's runs (every attempt
//! of their runs and steps names their own node). When `a` and `b` are then
//! killed mid-send and `a` alone is started again with its id, it resumes
//! its own runs at start-up, before it serves, and `b`'s only after it has
//! watched `b`'s lease for a whole lease; every run is resumed once, no SMS
//! is sent twice.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use neonhub_esdb_test_server::TestServer as EsdbServer;
use neonhub_events::{
    Codec, EsdbStore, EventStore, Position, RecordedEvent, RunEvent, RunId, RunStarted, RunState,
    RunStatus, Timestamp,
};
use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::ServeProcess;
use neonhub_test_support::twilio::{Reply, fake_twilio, live_twilio};
use neonhub_test_support::{wait_until, wait_until_within};
use serde_json::{Value, json};

const LEASE: Duration = Duration::from_secs(2);
/// How long the local Twilio holds a send: under the connector's 10 s
/// timeout, so a live node's send ends normally, long after a dead node's
/// runs must have been resumed.
const SEND_TAKES: Duration = Duration::from_secs(8);
const SMS_PER_NODE: usize = 4;

/// `neonhub serve` on the shared store as node `id`.
fn node(data: &Path, id: &str, esdb: &str, twilio: &str) -> ServeProcess {
    let lease = LEASE.as_secs().to_string();
    ServeProcess::spawn_with(
        data,
        &[
            "--store",
            "eventstoredb",
            "--eventstore-url",
            esdb,
            "--node-id",
            id,
            "--lease-secs",
            &lease,
        ],
        live_twilio(twilio),
    )
}

/// Submits an SMS run without waiting for it; returns its id.
async fn submit_sms(client: &reqwest::Client, base: &str, body: &str) -> RunId {
    let response = client
        .post(format!("{base}/v1/runs?wait=false"))
        .json(&json!({"intent": "sms.send", "input": {"to": "+15550001111", "body": body}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.unwrap();
    answer["run_id"].as_str().unwrap().parse().unwrap()
}

/// Runs an echo run to its end; returns its id.
async fn echo(client: &reqwest::Client, base: &str, n: usize) -> RunId {
    let response = client
        .post(format!("{base}/v1/runs"))
        .json(&json!({"agent": "echo", "input": {"n": n}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    answer["run_id"].as_str().unwrap().parse().unwrap()
}

/// Every run stream of the store, by run.
struct History {
    streams: HashMap<RunId, Vec<RecordedEvent>>,
    codec: Codec,
}

impl History {
    async fn read(store: &EsdbStore) -> Self {
        let mut streams: HashMap<RunId, Vec<RecordedEvent>> = HashMap::new();
        let mut from = Position::START;
        loop {
            let page = store.read_all(from, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.position.next();
            for recorded in page {
                if let Some(run_id) = recorded.stream.run_id() {
                    streams.entry(run_id).or_default().push(recorded);
                }
            }
        }
        Self {
            streams,
            codec: Codec::new(),
        }
    }

    fn events(&self, run: RunId) -> Vec<RunEvent> {
        self.streams
            .get(&run)
            .map(|s| s.iter().map(|e| self.codec.decode(e).unwrap()).collect())
            .unwrap_or_default()
    }

    fn starts(&self, run: RunId) -> Vec<RunStarted> {
        self.events(run)
            .into_iter()
            .filter_map(|e| match e {
                RunEvent::Started(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The attempts that resumed `run`.
    fn resumes(&self, run: RunId) -> Vec<RunStarted> {
        self.starts(run).into_iter().filter(|s| s.resumed).collect()
    }

    fn status(&self, run: RunId) -> Option<RunStatus> {
        let stream = self.streams.get(&run)?;
        RunState::from_stream(&self.codec, stream)
            .unwrap()
            .map(|s| s.status)
    }

    /// The step runs `run` made.
    fn steps(&self, run: RunId) -> Vec<RunId> {
        self.streams
            .keys()
            .copied()
            .filter(|&id| {
                self.starts(id)
                    .first()
                    .is_some_and(|s| s.parent_run_id == Some(run))
            })
            .collect()
    }

    /// Asserts that every attempt of `run` and of its steps was started by
    /// `owner`, and that no attempt of it failed (none was interrupted).
    fn assert_untouched(&self, run: RunId, owner: &str) {
        for id in std::iter::once(run).chain(self.steps(run)) {
            for event in self.events(id) {
                match event {
                    RunEvent::Started(s) => assert_eq!(
                        s.node.as_ref().map(|n| n.as_str()),
                        Some(owner),
                        "run {run} of live node {owner}: an attempt by another node: {s:?}"
                    ),
                    RunEvent::Failed(f) => {
                        panic!("run {run} of live node {owner} got a failure: {f:?}")
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(self.starts(run).len(), 1, "run {run} of {owner}");
    }
}

fn micros(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn node_of(s: &RunStarted) -> &str {
    s.node.as_ref().map_or("(none)", |n| n.as_str())
}

#[actix_rt::test]
async fn survivors_resume_a_killed_nodes_runs_once_and_a_restarted_node_takes_its_own_back() {
    let esdb_server = EsdbServer::start().expect("start the EventStoreDB test server");
    let esdb = esdb_server.url();
    let store = EsdbStore::connect(&esdb).unwrap();
    // Twilio: a send is kept and answered after SEND_TAKES; a list of the
    // messages sent answers at once (the lookup of a step in doubt).
    let twilio = fake_twilio(|_| Reply::Accept(SEND_TAKES));
    let posts = |twilio: &TestServer| twilio.count(|s| s.method == "POST");
    // No idle connections kept: a node closes them after its keep-alive,
    // racing a request sent on one.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = node(dirs[0].path(), "a", &esdb, &twilio.base_url);
    let b = node(dirs[1].path(), "b", &esdb, &twilio.base_url);
    let c = node(dirs[2].path(), "c", &esdb, &twilio.base_url);

    // Phase 1: SMS runs on every node, all mid-send; echo runs all along.
    let mut sms: Vec<(&str, RunId)> = Vec::new();
    for (id, serve) in [("a", &a), ("b", &b), ("c", &c)] {
        for i in 0..SMS_PER_NODE {
            sms.push((
                id,
                submit_sms(&client, &serve.base, &format!("{id}-1-{i}")).await,
            ));
        }
    }
    let mut echoes: Vec<(&str, RunId)> = Vec::new();
    for i in 0..10 {
        for (id, serve) in [("a", &a), ("b", &b), ("c", &c)] {
            echoes.push((id, echo(&client, &serve.base, i).await));
        }
    }
    let expected_posts = 3 * SMS_PER_NODE;
    wait_until_within("every SMS to reach Twilio", Duration::from_secs(20), || {
        let hits = posts(&twilio);
        async move { hits == expected_posts }
    })
    .await;
    let stop_load = Arc::new(AtomicBool::new(false));
    let load_runs = Arc::new(Mutex::new(Vec::new()));
    let load = actix_rt::spawn({
        let (stop, runs, client) = (
            Arc::clone(&stop_load),
            Arc::clone(&load_runs),
            client.clone(),
        );
        let bases = [("a", a.base.clone()), ("b", b.base.clone())];
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                for (id, base) in &bases {
                    let run = echo(&client, base, n).await;
                    runs.lock().unwrap().push((*id, run));
                }
                n += 1;
            }
        }
    });
    c.kill();
    let killed = Instant::now();

    let c_runs: Vec<RunId> = sms.iter().filter(|(n, _)| *n == "c").map(|r| r.1).collect();
    let deadline = LEASE + Duration::from_secs(5);
    wait_until_within(
        "the survivors to resume every run of the killed node",
        deadline,
        || {
            let (store, c_runs) = (&store, &c_runs);
            async move {
                let history = History::read(store).await;
                c_runs.iter().all(|&r| !history.resumes(r).is_empty())
            }
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(took <= deadline, "resumed {took:?} after the kill");
    wait_until("every run of phase 1 to end", || {
        let store = &store;
        let runs: Vec<RunId> = sms.iter().map(|r| r.1).collect();
        async move {
            let history = History::read(store).await;
            runs.iter()
                .all(|&r| history.status(r).is_some_and(|s| s != RunStatus::Running))
        }
    })
    .await;
    stop_load.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let history = History::read(&store).await;
    for &(owner, run) in &sms {
        assert_eq!(history.status(run), Some(RunStatus::Succeeded), "{run}");
        if owner == "c" {
            let resumes = history.resumes(run);
            assert_eq!(resumes.len(), 1, "run {run} of c resumed {resumes:?}");
            let by = node_of(&resumes[0]);
            assert!(by == "a" || by == "b", "run {run} of c resumed by {by}");
            assert_eq!(history.starts(run).len(), 2, "{run}");
        } else {
            history.assert_untouched(run, owner);
        }
    }
    let load_runs = load_runs.lock().unwrap().clone();
    assert!(!load_runs.is_empty(), "no echo run during the takeover");
    for &(owner, run) in echoes.iter().chain(&load_runs) {
        assert_eq!(history.status(run), Some(RunStatus::Succeeded), "{run}");
        history.assert_untouched(run, owner);
    }
    assert_eq!(
        posts(&twilio),
        expected_posts,
        "an SMS was sent again after the kill"
    );

    // Phase 2: a and b die mid-send; a alone comes back under its id.
    let mut sms2: Vec<(&str, RunId)> = Vec::new();
    for (id, serve) in [("a", &a), ("b", &b)] {
        for i in 0..SMS_PER_NODE {
            sms2.push((
                id,
                submit_sms(&client, &serve.base, &format!("{id}-2-{i}")).await,
            ));
        }
    }
    let expected_posts = expected_posts + 2 * SMS_PER_NODE;
    wait_until_within(
        "the new SMS to reach Twilio",
        Duration::from_secs(20),
        || {
            let hits = posts(&twilio);
            async move { hits == expected_posts }
        },
    )
    .await;
    a.kill();
    b.kill();
    let restarted_at = SystemTime::now();
    let restarted = Instant::now();
    let a = node(dirs[0].path(), "a", &esdb, &twilio.base_url);
    let serving_at = SystemTime::now();

    // Its own runs were resumed before it served, by it.
    let history = History::read(&store).await;
    for &(owner, run) in sms2.iter().filter(|(n, _)| *n == "a") {
        let resumes = history.resumes(run);
        assert_eq!(resumes.len(), 1, "run {run} of {owner}: {resumes:?}");
        assert_eq!(node_of(&resumes[0]), "a");
        assert!(resumes[0].started_at <= Timestamp(micros(serving_at)));
    }
    let b_runs: Vec<RunId> = sms2
        .iter()
        .filter(|(n, _)| *n == "b")
        .map(|r| r.1)
        .collect();
    wait_until_within(
        "the restarted node to resume the runs of the dead one",
        LEASE + Duration::from_secs(5),
        || {
            let (store, b_runs) = (&store, &b_runs);
            async move {
                let history = History::read(store).await;
                b_runs.iter().all(|&r| !history.resumes(r).is_empty())
            }
        },
    )
    .await;
    assert!(restarted.elapsed() <= LEASE + Duration::from_secs(5));
    wait_until("every run of phase 2 to end", || {
        let store = &store;
        let runs: Vec<RunId> = sms2.iter().map(|r| r.1).collect();
        async move {
            let history = History::read(store).await;
            runs.iter()
                .all(|&r| history.status(r).is_some_and(|s| s != RunStatus::Running))
        }
    })
    .await;
    let history = History::read(&store).await;
    for &(owner, run) in &sms2 {
        assert_eq!(history.status(run), Some(RunStatus::Succeeded), "{run}");
        let resumes = history.resumes(run);
        assert_eq!(resumes.len(), 1, "run {run} of {owner}: {resumes:?}");
        assert_eq!(node_of(&resumes[0]), "a", "run {run} of {owner}");
        if owner == "b" {
            // Not before a had watched b's lease stay unrenewed for a lease.
            let waited = resumes[0]
                .started_at
                .as_micros()
                .saturating_sub(micros(restarted_at));
            assert!(
                waited >= LEASE.as_micros() as u64,
                "run {run} of b resumed {waited} µs after a restarted"
            );
        }
    }
    assert_eq!(
        posts(&twilio),
        expected_posts,
        "an SMS was sent again after the restart"
    );
    let (code, _) = a.terminate();
    assert_eq!(code, Some(0));
}
