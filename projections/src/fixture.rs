//! Synthetic run logs for tests and benches (feature `fixture`): every shape
//! of run (success, failure, retries, interrupted, still running, agent runs
//! with connector child runs), interleaved as concurrent runs would be.

use std::collections::HashMap;

use neonhub_events::{
    Codec, ErrorKind, EventStore, ExpectedRevision, Metadata, Revision, RunError, RunEvent,
    RunFailed, RunId, RunKind, RunStarted, RunSucceeded, Timestamp,
};
use serde_json::json;
use uuid::Uuid;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixtureSpec {
    /// Agent runs (each may make connector child runs).
    pub agent_runs: usize,
    /// Seed of the generator: the same spec gives the same events.
    pub seed: u64,
    /// How many runs are in flight at once (how much streams interleave).
    pub concurrency: usize,
}

impl FixtureSpec {
    /// `agent_runs` runs, seed 1, 16 in flight.
    pub fn new(agent_runs: usize) -> Self {
        Self {
            agent_runs,
            seed: 1,
            concurrency: 16,
        }
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const AGENTS: [(&str, Option<&str>); 5] = [
    ("email", Some("email.send")),
    ("notify", Some("notify.user")),
    ("summarize", None),
    ("triage", Some("support.triage")),
    ("echo", None),
];
const CONNECTORS: [(&str, &str); 6] = [
    ("gmail", "send"),
    ("gmail", "list_messages"),
    ("slack", "post_message"),
    ("slack", "get_user_info"),
    ("twilio", "send_sms"),
    ("twilio", "get_sms_status"),
];

/// The events of one run (and the runs it spawns), in stream order, with
/// their simulated clock offsets.
struct Script {
    events: Vec<RunEvent>,
    next: usize,
}

/// Builds the event sequence of a fixture: runs' events interleaved as if
/// `concurrency` runs were in flight.
pub fn script(spec: &FixtureSpec) -> Vec<RunEvent> {
    let mut rng = Rng::new(spec.seed);
    let mut clock: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    let mut pending: Vec<Script> = Vec::new();
    let mut out = Vec::new();
    let mut made = 0usize;
    while made < spec.agent_runs || !pending.is_empty() {
        while made < spec.agent_runs && pending.len() < spec.concurrency.max(1) {
            clock += 1 + rng.below(2_000);
            let correlation = Uuid::from_u64_pair(spec.seed, made as u64);
            let agent = RunId::from_uuid(Uuid::from_u64_pair(spec.seed ^ 0xa5a5, made as u64 * 8));
            let (name, intent) = AGENTS[rng.below(AGENTS.len() as u64) as usize];
            let mut events = run_events(
                &mut rng,
                &RunIdentity {
                    run_id: agent,
                    kind: RunKind::Agent,
                    target: name,
                    operation: "run",
                    intent,
                    parent: None,
                    correlation_id: correlation,
                },
                clock,
            );
            // Connector child runs, started after the agent's first start.
            let children = rng.below(4);
            for c in 0..children {
                let (conn, op) = CONNECTORS[rng.below(CONNECTORS.len() as u64) as usize];
                let child = RunId::from_uuid(Uuid::from_u64_pair(
                    spec.seed ^ 0xa5a5,
                    made as u64 * 8 + 1 + c,
                ));
                let child_events = run_events(
                    &mut rng,
                    &RunIdentity {
                        run_id: child,
                        kind: RunKind::Connector,
                        target: conn,
                        operation: op,
                        intent: None,
                        parent: Some(agent),
                        correlation_id: correlation,
                    },
                    clock + 100 * (c + 1),
                );
                events = splice(&mut rng, events, child_events);
            }
            pending.push(Script { events, next: 0 });
            made += 1;
        }
        let i = rng.below(pending.len() as u64) as usize;
        let s = &mut pending[i];
        out.push(s.events[s.next].clone());
        s.next += 1;
        if s.next == s.events.len() {
            pending.swap_remove(i);
        }
    }
    out
}

/// Splices a child run's events into its parent's, after the parent's
/// first event, interleaving the rest at random but keeping each stream's
/// own order.
fn splice(rng: &mut Rng, mut events: Vec<RunEvent>, child_events: Vec<RunEvent>) -> Vec<RunEvent> {
    let at = 1 + rng.below(events.len() as u64) as usize;
    let mut merged = Vec::with_capacity(events.len() + child_events.len());
    merged.extend(events.drain(..at.min(events.len())));
    let mut rest = events.into_iter();
    let mut kid = child_events.into_iter();
    loop {
        match (rng.below(2) == 0, kid.len() > 0, rest.len() > 0) {
            (_, false, false) => break,
            (true, true, _) | (_, true, false) => merged.extend(kid.next()),
            _ => merged.extend(rest.next()),
        }
    }
    merged
}

/// Who a generated run is: what each of its `RunStarted` events repeats.
struct RunIdentity<'a> {
    run_id: RunId,
    kind: RunKind,
    target: &'a str,
    operation: &'a str,
    intent: Option<&'a str>,
    parent: Option<RunId>,
    correlation_id: Uuid,
}

impl RunIdentity<'_> {
    /// The run's `RunStarted` for `attempt`, at `at`.
    fn started(&self, attempt: u32, at: u64) -> RunEvent {
        RunEvent::Started(RunStarted {
            run_id: self.run_id,
            kind: self.kind,
            target: self.target.to_owned(),
            operation: self.operation.to_owned(),
            intent: self.intent.map(str::to_owned),
            input: json!({"to": format!("user{}@example.com", at % 997), "n": at % 13}),
            attempt,
            parent_run_id: self.parent,
            correlation_id: self.correlation_id,
            started_at: Timestamp(at),
            request_digest: None,
            step: None,
            resumed: false,
            node: None,
            paused_micros: 0,
        })
    }
}

/// The events of one run starting at `start`, in a shape drawn from `rng`.
fn run_events(rng: &mut Rng, run: &RunIdentity<'_>, start: u64) -> Vec<RunEvent> {
    let mut events = Vec::new();
    let mut at = start;
    // Shapes: 0-54 success, 55-69 failure, 70-84 retries, 85-92 interrupted,
    // 93-99 still running (some after retries, some waiting for a retry).
    let shape = rng.below(100);
    let retries = if (70..85).contains(&shape) {
        1 + rng.below(3) as u32
    } else if shape >= 93 {
        rng.below(2) as u32
    } else {
        0
    };
    let mut attempt = 1;
    events.push(run.started(attempt, at));
    for _ in 0..retries {
        retry(rng, run, &mut attempt, &mut at, &mut events);
    }
    if shape >= 93 {
        if rng.below(2) == 0 {
            // Waiting for a retry that has not started yet.
            events.push(RunEvent::Failed(RunFailed {
                run_id: run.run_id,
                attempt,
                error: RunError::new(ErrorKind::Timeout, "attempt timed out"),
                will_retry: true,
                retry_at: None,
                duration_micros: 1_000,
                finished_at: Timestamp(at + 1_000),
            }));
        }
        return events;
    }
    events.push(finished(rng, run, shape, attempt, at));
    events
}

/// Appends to `events` a transient failure of `attempt` and the start of
/// the next, moving `at` on.
fn retry(
    rng: &mut Rng,
    run: &RunIdentity<'_>,
    attempt: &mut u32,
    at: &mut u64,
    events: &mut Vec<RunEvent>,
) {
    let d = 1_000 + rng.below(400_000);
    *at += d;
    events.push(RunEvent::Failed(RunFailed {
        run_id: run.run_id,
        attempt: *attempt,
        error: RunError::new(
            [
                ErrorKind::Timeout,
                ErrorKind::RateLimited,
                ErrorKind::Connector,
            ][rng.below(3) as usize],
            "transient failure",
        ),
        will_retry: true,
        retry_at: None,
        duration_micros: d,
        finished_at: Timestamp(*at),
    }));
    *at += 1_000 + rng.below(50_000);
    *attempt += 1;
    events.push(run.started(*attempt, *at));
}

/// The event that ends a run of `shape` (below 93) on `attempt`, started
/// at `at`: interrupted, failed or succeeded.
fn finished(rng: &mut Rng, run: &RunIdentity<'_>, shape: u64, attempt: u32, at: u64) -> RunEvent {
    let run_id = run.run_id;
    let d = 500
        + rng.below(if run.kind == RunKind::Agent {
            3_000_000
        } else {
            800_000
        });
    let at = at + d;
    let fail = (55..70).contains(&shape) || ((70..85).contains(&shape) && rng.below(3) == 0);
    if shape >= 85 {
        RunEvent::Failed(RunFailed {
            run_id,
            attempt,
            error: RunError::new(ErrorKind::Interrupted, "the process stopped"),
            will_retry: false,
            retry_at: None,
            duration_micros: d,
            finished_at: Timestamp(at),
        })
    } else if fail {
        let kind = ErrorKind::ALL[rng.below(ErrorKind::ALL.len() as u64) as usize];
        RunEvent::Failed(RunFailed {
            run_id,
            attempt,
            error: RunError::new(kind, format!("{kind} on attempt {attempt}")),
            will_retry: false,
            retry_at: None,
            duration_micros: d,
            finished_at: Timestamp(at),
        })
    } else {
        RunEvent::Succeeded(RunSucceeded {
            run_id,
            attempt,
            output: json!({"ok": true, "id": format!("m-{}", at % 100_000)}),
            duration_micros: d,
            finished_at: Timestamp(at),
        })
    }
}

/// Appends run events with the append rules of the design: a stream's first
/// event at `NoStream`, each later one at `Exact(last revision)`.
#[derive(Debug, Default)]
pub struct Appender {
    last: HashMap<RunId, Revision>,
    codec: Codec,
}

impl Appender {
    /// A fresh appender (for an empty log).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `events` in order, one append per run of consecutive events
    /// of the same stream.
    ///
    /// # Errors
    /// The store's append errors.
    pub async fn append(
        &mut self,
        store: &dyn EventStore,
        events: &[RunEvent],
    ) -> neonhub_events::Result<()> {
        let mut i = 0;
        while i < events.len() {
            let run_id = events[i].run_id();
            let mut j = i + 1;
            while j < events.len() && events[j].run_id() == run_id {
                j += 1;
            }
            let mut data = Vec::with_capacity(j - i);
            for e in &events[i..j] {
                let correlation_id = match e {
                    RunEvent::Started(s) => Some(s.correlation_id),
                    _ => None,
                };
                data.push(self.codec.encode(
                    e,
                    Metadata {
                        correlation_id,
                        causation_id: None,
                    },
                )?);
            }
            let expected = match self.last.get(&run_id) {
                None => ExpectedRevision::NoStream,
                Some(r) => ExpectedRevision::Exact(*r),
            };
            let result = store.append(&run_id.stream(), expected, data).await?;
            self.last.insert(run_id, result.next_expected);
            i = j;
        }
        Ok(())
    }
}

/// Appends `events` from `lanes` concurrent appenders, each owning the
/// streams whose run id hashes to it (so each stream keeps its order, and
/// the store's group commit batches the lanes' appends). Much faster than
/// one [`Appender`] for big fixtures; the global interleaving then depends
/// on timing.
///
/// # Errors
/// The first append error of any lane.
pub async fn append_in_lanes(
    store: &neonhub_events::SharedStore,
    events: &[RunEvent],
    lanes: usize,
) -> neonhub_events::Result<()> {
    let lanes = lanes.max(1);
    let mut split: Vec<Vec<RunEvent>> = vec![Vec::new(); lanes];
    for e in events {
        let lane = (e.run_id().as_uuid().as_u128() % lanes as u128) as usize;
        split[lane].push(e.clone());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for lane in split {
        let store = store.clone();
        tasks.spawn(async move {
            let mut appender = Appender::new();
            for chunk in lane.chunks(1024) {
                appender.append(&*store, chunk).await?;
            }
            Ok::<(), neonhub_events::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| neonhub_events::Error::InvalidInput(format!("append lane: {e}")))??;
    }
    Ok(())
}
