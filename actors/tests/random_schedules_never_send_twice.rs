//! A property over random schedules: crashes, timeouts, vendor failures and
//! retries never make a send happen twice, and every run ends. Each case is a
//! few runs of an agent making 1 to 3 steps against a local server standing in
//! for Twilio (unsafe `send_sms`, each with a body of its own; safe
//! `sms_status`). Every request gets the answer the schedule says: at once,
//! after the connector's timeout, 500 with or without acting on it, 503, 429
//! or 400 (a connection reset is classified as a 500 is; the local server
//! cannot reset one). Lookups (reconciling) answer, fail or time out. Attempts
//! fail (a retryable error, a hang past the attempt timeout), clients cancel
//! runs (`CancelRun`), and a life of the process ends, up to twice a case: it
//! "crashes" at a chosen append (a store wrapping the log fails every call
//! from then on, the append itself written or not), or shuts down past its
//! deadline (`InterruptRuns`) and exits. A new orchestrator on the log left
//! behind resumes the unfinished runs (`find_unfinished` +
//! `ResumeInterrupted`) while the clients submit their runs again under the
//! same ids; after the last life they do so once more. The log is the
//! embedded log in a temp dir (`NEONHUB_PROPTEST_STORE=memory`: `MemoryStore`).
//!
//! The model, checked on the log and the vendor's own record:
//! - each send step reached the vendor at most once with a request that may
//!   have had an effect (answered 2xx or 5xx other than 503, or too late);
//! - every stream in the log folds (`RunState::from_stream`), none is left
//!   running, and every run the clients submitted is in the log, finished;
//! - a step recorded succeeded is a message the vendor holds (same SID), and a
//!   run that succeeded sent each of its messages exactly once;
//! - a resubmission answers what the log says.
//!
//! `PROPTEST_CASES` sets the number of cases (default [`DEFAULT_CASES`], well
//! under a minute in debug). A longer campaign:
//! `PROPTEST_CASES=2000 cargo test --release -p neonhub-actors --test random_schedules_never_send_twice -- --nocapture`

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::DateTime;
use neonhub_actors::{
    Agent, AgentContext, AgentError, AgentOptions, BreakerConfig, CancelRun, ConnectorOptions,
    GetStats, InterruptRuns, Orchestrator, OrchestratorBuilder, ResumeInterrupted, RetryPolicy,
    SubmitRun, find_unfinished,
};
use neonhub_events::{
    Codec, ErrorKind, RecordedEvent, RunId, RunState, RunStatus, SharedStore, Timestamp,
};
use neonhub_test_support as support;
use neonhub_test_support::crash::{Crash, Crashing};
use neonhub_test_support::http::{Seen, TestServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};

/// Cases run by default; `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 96;

/// The connector's timeout: a request answered later than this is in doubt.
const CONNECTOR_TIMEOUT: Duration = Duration::from_millis(150);

/// How late a `Late` answer goes out: well past the connector's timeout.
const LATE: Duration = Duration::from_millis(450);

/// How long a hanging attempt would take: far past any attempt timeout.
const HANG: Duration = Duration::from_secs(60);

/// How long one life may take to settle before the case fails.
const SETTLE: Duration = Duration::from_secs(30);

/// The number every SMS goes to.
const TO: &str = "+15550001111";

// --- The schedule

/// How the vendor answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Acts on it and answers at once.
    Ok,
    /// Acts on it and answers after the connector's timeout.
    Late,
    /// Acts on it, then answers 500.
    ActsThen500,
    /// Answers 500 without acting on it.
    Fails500,
    /// 503: come back later (no effect).
    Unavailable503,
    /// 429: too many requests (no effect).
    TooMany429,
    /// 400: refused (no effect, permanent).
    Refused400,
}

impl Answer {
    /// Whether the vendor acts on the request (records the message).
    fn acts(self) -> bool {
        matches!(self, Answer::Ok | Answer::Late | Answer::ActsThen500)
    }

    /// Whether the caller must assume the request may have had its effect.
    fn may_have_had_effect(self) -> bool {
        matches!(
            self,
            Answer::Ok | Answer::Late | Answer::ActsThen500 | Answer::Fails500
        )
    }
}

/// How the vendor answers a lookup of messages (a reconcile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// From what it recorded.
    Answers,
    /// 500.
    Fails,
    /// After the connector's timeout.
    Late,
}

/// One step of a run: what it calls, and how the vendor answers its
/// requests in turn (after the list, at once).
#[derive(Clone, Debug)]
enum StepPlan {
    /// `send_sms` with a body of its own: not safe to repeat.
    Send(Vec<Answer>),
    /// `sms_status`: safe to repeat.
    Read(Vec<Answer>),
}

/// How an attempt goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    /// A retryable error.
    Error,
    /// No answer until the attempt timeout cuts it off.
    Hang,
}

/// Attempts `1..=attempts` go wrong (`how`) after their first `after` steps.
#[derive(Clone, Copy, Debug)]
struct AttemptFailure {
    after: usize,
    attempts: u32,
    how: Trouble,
}

#[derive(Clone, Debug)]
struct RunPlan {
    steps: Vec<StepPlan>,
    failure: Option<AttemptFailure>,
    /// Its client cancels it (`CancelRun`) this long into the first life.
    cancel_after_ms: Option<u64>,
}

/// How a life ends, but the last.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// The process dies at an append.
    Crash(Crash),
    /// A shutdown past its drain deadline (`InterruptRuns`) `after_ms` into
    /// the life, then the process exits.
    Interrupt { after_ms: u64 },
}

#[derive(Clone, Debug)]
struct Schedule {
    runs: Vec<RunPlan>,
    /// One per life but the last (which runs to the end).
    stops: Vec<Stop>,
    /// Answers to the vendor's lookups, in turn (after the list: answers).
    lookups: Vec<Lookup>,
    /// Attempts per agent run (its retry policy).
    agent_attempts: u32,
    /// The attempt timeout, in milliseconds.
    attempt_timeout_ms: u64,
}

fn answer() -> impl Strategy<Value = Answer> {
    // The benign answer first: shrinking moves toward it.
    prop_oneof![
        4 => Just(Answer::Ok),
        2 => Just(Answer::Late),
        1 => Just(Answer::ActsThen500),
        1 => Just(Answer::Fails500),
        1 => Just(Answer::Unavailable503),
        1 => Just(Answer::TooMany429),
        1 => Just(Answer::Refused400),
    ]
}

fn step_plan() -> impl Strategy<Value = StepPlan> {
    let answers = || prop::collection::vec(answer(), 0..=3);
    prop_oneof![
        3 => answers().prop_map(StepPlan::Send),
        1 => answers().prop_map(StepPlan::Read),
    ]
}

fn run_plan() -> impl Strategy<Value = RunPlan> {
    let failure = (
        0usize..=3,
        1u32..=2,
        prop_oneof![Just(Trouble::Error), Just(Trouble::Hang)],
    )
        .prop_map(|(after, attempts, how)| AttemptFailure {
            after,
            attempts,
            how,
        });
    (
        prop::option::weighted(0.4, failure),
        prop::option::weighted(0.15, 0u64..300),
        prop::collection::vec(step_plan(), 1..=3),
    )
        .prop_map(|(failure, cancel_after_ms, steps)| RunPlan {
            steps,
            failure,
            cancel_after_ms,
        })
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let crash = (0u64..24, any::<bool>()).prop_map(|(at, durable)| Crash { at, durable });
    let stop = prop_oneof![
        3 => crash.prop_map(Stop::Crash),
        1 => (0u64..600).prop_map(|after_ms| Stop::Interrupt { after_ms }),
    ];
    let lookup = prop_oneof![
        3 => Just(Lookup::Answers),
        1 => Just(Lookup::Fails),
        1 => Just(Lookup::Late),
    ];
    // Shrinking simplifies the first element first: the lives, then the
    // lookups and the options, then the runs.
    (
        prop::collection::vec(stop, 0..=2),
        prop::collection::vec(lookup, 0..=2),
        1u32..=3,
        prop_oneof![Just(1_000u64), Just(300u64)],
        prop::collection::vec(run_plan(), 1..=3),
    )
        .prop_map(
            |(stops, lookups, agent_attempts, attempt_timeout_ms, runs)| Schedule {
                runs,
                stops,
                lookups,
                agent_attempts,
                attempt_timeout_ms,
            },
        )
}

/// The body of send step `step` of run `run`: unique to the step.
fn body(run: usize, step: usize) -> String {
    format!("run{run}-step{step}")
}

/// The SID read by read step `step` of run `run`.
fn read_sid(run: usize, step: usize) -> String {
    format!("SMread{run}x{step}")
}

// --- The vendor: a local Twilio that answers as the schedule says

/// What the vendor saw and holds.
#[derive(Default)]
struct VendorState {
    /// The answers planned per send body, and per read SID.
    plans: HashMap<String, Vec<Answer>>,
    /// The lookups' answers, in turn.
    lookups: Vec<Lookup>,
    lookups_seen: usize,
    /// Every send request, per body, with the answer it got.
    sends: BTreeMap<String, Vec<Answer>>,
    /// Requests per read SID.
    reads: HashMap<String, usize>,
    /// The messages the vendor acted on, as it lists them.
    messages: Vec<Value>,
}

struct Vendor {
    server: TestServer,
    state: Arc<Mutex<VendorState>>,
}

/// `%XX` and `+` decoded.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("a %XX escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8")
}

/// The value of `name` in a query string or a form body.
fn param(encoded: &str, name: &str) -> Option<String> {
    encoded.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

fn status_of(answer: Answer) -> u16 {
    match answer {
        Answer::Ok | Answer::Late => 201,
        Answer::ActsThen500 | Answer::Fails500 => 500,
        Answer::Unavailable503 => 503,
        Answer::TooMany429 => 429,
        Answer::Refused400 => 400,
    }
}

fn delay_of(answer: Answer) -> Duration {
    if answer == Answer::Late {
        LATE
    } else {
        Duration::ZERO
    }
}

impl VendorState {
    fn answer(&mut self, request: &Seen) -> (u16, String, Duration) {
        let messages_path = "/Accounts/AC0123/Messages.json";
        if request.method == "POST" && request.path == messages_path {
            let body = param(&request.body, "Body").unwrap_or_default();
            let seen = self.sends.entry(body.clone()).or_default();
            let answer = self
                .plans
                .get(&body)
                .and_then(|plan| plan.get(seen.len()).copied())
                .unwrap_or(Answer::Ok);
            seen.push(answer);
            let sid = format!("SM{:032}", self.messages.len() + 1);
            let micros = i64::try_from(Timestamp::now().as_micros()).expect("a sane clock");
            let created = DateTime::from_timestamp_micros(micros).expect("a sane clock");
            let message = json!({
                "sid": sid,
                "status": "queued",
                "to": param(&request.body, "To"),
                "from": param(&request.body, "From"),
                "body": body,
                "date_created": created.to_rfc2822(),
            });
            if answer.acts() {
                self.messages.push(message.clone());
            }
            let reply = if status_of(answer) == 201 {
                message.to_string()
            } else {
                json!({"message": "the schedule says so"}).to_string()
            };
            return (status_of(answer), reply, delay_of(answer));
        }
        if request.method == "GET" && request.path == messages_path {
            let lookup = self
                .lookups
                .get(self.lookups_seen)
                .copied()
                .unwrap_or(Lookup::Answers);
            self.lookups_seen += 1;
            let to = param(&request.query, "To");
            let listed: Vec<Value> = self
                .messages
                .iter()
                .filter(|m| m["to"].as_str() == to.as_deref())
                .cloned()
                .collect();
            let page = json!({"messages": listed, "next_page_uri": null}).to_string();
            return match lookup {
                Lookup::Answers => (200, page, Duration::ZERO),
                Lookup::Late => (200, page, LATE),
                Lookup::Fails => (500, "{}".to_owned(), Duration::ZERO),
            };
        }
        let read = request
            .path
            .strip_prefix("/Accounts/AC0123/Messages/")
            .and_then(|rest| rest.strip_suffix(".json"));
        if let (Some(sid), "GET") = (read, request.method.as_str()) {
            let seen = self.reads.entry(sid.to_owned()).or_default();
            let answer = self
                .plans
                .get(sid)
                .and_then(|plan| plan.get(*seen).copied())
                .unwrap_or(Answer::Ok);
            *seen += 1;
            let reply = json!({"sid": sid, "status": "delivered"}).to_string();
            let status = if status_of(answer) == 201 {
                200
            } else {
                status_of(answer)
            };
            return (status, reply, delay_of(answer));
        }
        (
            404,
            json!({"message": "no such endpoint"}).to_string(),
            Duration::ZERO,
        )
    }
}

impl Vendor {
    fn start(schedule: &Schedule) -> Self {
        let mut state = VendorState {
            lookups: schedule.lookups.clone(),
            ..VendorState::default()
        };
        for (r, run) in schedule.runs.iter().enumerate() {
            for (s, step) in run.steps.iter().enumerate() {
                let (key, plan) = match step {
                    StepPlan::Send(plan) => (body(r, s), plan),
                    StepPlan::Read(plan) => (read_sid(r, s), plan),
                };
                state.plans.insert(key, plan.clone());
            }
        }
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::clone(&state);
        let server =
            TestServer::start_delaying(move |request| shared.lock().unwrap().answer(request));
        Self { server, state }
    }
}

// --- The agent: the steps its input lists, failing as its input says

#[derive(Clone, Copy)]
struct Scripted;

#[async_trait]
impl Agent for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn run(&self, input: Value, ctx: AgentContext) -> Result<Value, AgentError> {
        let steps = input["steps"].as_array().cloned().unwrap_or_default();
        let fails = |done: usize| {
            let failure = &input["failure"];
            let attempts = failure["attempts"].as_u64().unwrap_or(0);
            (failure["after"].as_u64() == Some(done as u64) && u64::from(ctx.attempt()) <= attempts)
                .then(|| failure["how"].as_str().unwrap_or_default().to_owned())
        };
        let mut outputs = Vec::new();
        for (done, step) in steps.iter().enumerate() {
            trouble(fails(done)).await?;
            let output = if let Some(body) = step["send"].as_str() {
                ctx.call("twilio", "send_sms", json!({"to": TO, "body": body}))
                    .await?
            } else {
                let sid = step["read"].as_str().unwrap_or_default();
                ctx.call("twilio", "sms_status", json!({"sid": sid}))
                    .await?
            };
            outputs.push(output);
        }
        trouble(fails(steps.len())).await?;
        Ok(Value::Array(outputs))
    }
}

/// Goes wrong as `how` says, if it says.
async fn trouble(how: Option<String>) -> Result<(), AgentError> {
    match how.as_deref() {
        Some("error") => Err(AgentError::retryable("the schedule fails this attempt")),
        Some("hang") => {
            tokio::time::sleep(HANG).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn agent_input(r: usize, run: &RunPlan) -> Value {
    let steps: Vec<Value> = run
        .steps
        .iter()
        .enumerate()
        .map(|(s, step)| match step {
            StepPlan::Send(_) => json!({"send": body(r, s)}),
            StepPlan::Read(_) => json!({"read": read_sid(r, s)}),
        })
        .collect();
    let failure = run.failure.map_or(Value::Null, |f| {
        json!({
            "after": f.after,
            "attempts": f.attempts,
            "how": match f.how { Trouble::Error => "error", Trouble::Hang => "hang" },
        })
    });
    json!({"steps": steps, "failure": failure})
}

// --- Running a schedule

fn orchestrator(
    store: &SharedStore,
    vendor: &Vendor,
    schedule: &Schedule,
) -> actix::Addr<Orchestrator> {
    let agent = AgentOptions {
        timeout: Duration::from_millis(schedule.attempt_timeout_ms),
        retry: RetryPolicy::attempts(schedule.agent_attempts, Duration::from_millis(1)),
        ..AgentOptions::default()
    };
    let connector = ConnectorOptions {
        timeout: CONNECTOR_TIMEOUT,
        retry: RetryPolicy::attempts(3, Duration::from_millis(1)),
        // Neither stands between a request and its answer here.
        breaker: BreakerConfig {
            failure_threshold: 1_000_000,
            ..BreakerConfig::default()
        },
        ..ConnectorOptions::default()
    };
    OrchestratorBuilder::new(store.clone())
        .agent(|| Scripted, agent)
        .connector(support::twilio_at(&vendor.server.base_url), connector)
        .start()
        .expect("start the orchestrator")
}

/// Waits until `orchestrator` has no run in flight (the life has settled).
async fn settle(orchestrator: &actix::Addr<Orchestrator>) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let stats = orchestrator
            .send(GetStats)
            .await
            .map_err(|e| format!("the orchestrator stopped: {e}"))?;
        if stats.in_flight == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} runs still in flight after {SETTLE:?}",
                stats.in_flight
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What one case saw, for the summary.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    crashes: u64,
    interrupts: u64,
    resumed: u64,
    runs_succeeded: u64,
    runs_failed: u64,
    in_doubt: u64,
    cancelled: u64,
    reconciled: u64,
    sends_with_effect: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.crashes += other.crashes;
        self.interrupts += other.interrupts;
        self.resumed += other.resumed;
        self.runs_succeeded += other.runs_succeeded;
        self.runs_failed += other.runs_failed;
        self.in_doubt += other.in_doubt;
        self.cancelled += other.cancelled;
        self.reconciled += other.reconciled;
        self.sends_with_effect += other.sends_with_effect;
    }
}

/// The log the lives share: the embedded log in a temp dir, or the in-memory
/// store with `NEONHUB_PROPTEST_STORE=memory`.
fn the_log() -> (Option<tempfile::TempDir>, SharedStore) {
    if std::env::var("NEONHUB_PROPTEST_STORE").as_deref() == Ok("memory") {
        (None, support::memory_store())
    } else {
        let (dir, log) = support::store();
        (Some(dir), log)
    }
}

/// Runs `schedule` to the end, then checks the model. `Err` says what broke.
async fn run_schedule(schedule: &Schedule) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let (_dir, log) = the_log();
    let vendor = Vendor::start(schedule);
    let run_ids: Vec<RunId> = schedule.runs.iter().map(|_| RunId::new()).collect();
    let submit = |orchestrator: &actix::Addr<Orchestrator>| {
        let submits = schedule.runs.iter().enumerate().map(|(r, run)| {
            let submit = SubmitRun::agent("scripted", agent_input(r, run)).with_run_id(run_ids[r]);
            orchestrator.send(submit)
        });
        futures_util::future::join_all(submits)
    };
    let lives = schedule.stops.len() + 1;
    for life in 0..lives {
        let stop = schedule.stops.get(life).copied();
        let crash = match stop {
            Some(Stop::Crash(crash)) => Some(crash),
            _ => None,
        };
        let crashing = Arc::new(Crashing::new(Arc::clone(&log), crash));
        let store: SharedStore = crashing.clone();
        let orchestrator = orchestrator(&store, &vendor, schedule);
        let work = async {
            if life == 0 {
                // The clients submit their runs; a crash may cut them short.
                let _ = submit(&orchestrator).await;
                return Ok(0);
            }
            // Start-up recovery, on the log the last life left.
            let found = find_unfinished(&*store, &Codec::new()).await;
            let runs = match found {
                Ok((_, runs)) => runs,
                Err(_) if crashing.is_dead() => return Ok(0),
                Err(e) => return Err(format!("find_unfinished failed: {e}")),
            };
            let resume = ResumeInterrupted {
                runs,
                max_resumes: 16,
            };
            let resumed = match orchestrator.send(resume).await.expect("the orchestrator") {
                Ok(report) => report.resumed.len() as u64,
                // The crash cut recovery short: the next life recovers.
                Err(_) if crashing.is_dead() => 0,
                Err(e) => return Err(format!("ResumeInterrupted failed: {e}")),
            };
            // Clients whose answer was lost submit again meanwhile: a run
            // being resumed is refused as in progress, a run the log never
            // got runs now.
            let _ = submit(&orchestrator).await;
            Ok(resumed)
        };
        let interrupt = async {
            if let Some(Stop::Interrupt { after_ms }) = stop {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                let _ = orchestrator.send(InterruptRuns).await;
            }
        };
        let cancels = futures_util::future::join_all(
            schedule
                .runs
                .iter()
                .zip(&run_ids)
                .filter_map(|(run, &run_id)| run.cancel_after_ms.zip(Some(run_id)))
                .filter(|_| life == 0)
                .map(|(after_ms, run_id)| {
                    let orchestrator = orchestrator.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        let reason = Some("the schedule cancels it".to_owned());
                        let _ = orchestrator.send(CancelRun { run_id, reason }).await;
                    }
                }),
        );
        let (resumed, (), _) = tokio::join!(work, interrupt, cancels);
        tally.resumed += resumed?;
        settle(&orchestrator).await?;
        if let Some(Stop::Interrupt { .. }) = stop {
            // The process exits after its shutdown.
            crashing.die();
            tally.interrupts += 1;
            continue;
        }
        if crashing.is_dead() {
            tally.crashes += 1;
            continue;
        }
        if life + 1 == lives {
            // The clients whose answer a crash lost submit again, under the
            // same id: a finished run answers what the log says, a run the
            // log never got runs now.
            let answers = submit(&orchestrator).await;
            settle(&orchestrator).await?;
            for (r, answer) in answers.into_iter().enumerate() {
                let outcome = answer
                    .expect("the orchestrator")
                    .map_err(|e| format!("run {r}: resubmitting it failed: {e}"))?;
                let state = support::recorded(&log, run_ids[r]).await;
                let state = RunState::from_stream(&Codec::new(), &state)
                    .map_err(|e| format!("run {r} does not fold: {e}"))?
                    .ok_or_else(|| format!("run {r} is not in the log"))?;
                let recorded = state
                    .result()
                    .map(|result| result.cloned().map_err(|e| (e.kind, e.message.clone())));
                let answered = outcome
                    .result
                    .clone()
                    .map_err(|e| (e.kind, e.message.clone()));
                if recorded != Some(answered.clone()) {
                    return Err(format!(
                        "run {r}: resubmitting answered {answered:?}, the log says {recorded:?}"
                    ));
                }
            }
        }
    }
    let checked = check_model(schedule, &log, &vendor, &run_ids).await;
    vendor.server.stop().await;
    tally.add(checked?);
    Ok(tally)
}

/// Checks the model on the log and the vendor's record.
async fn check_model(
    schedule: &Schedule,
    log: &SharedStore,
    vendor: &Vendor,
    run_ids: &[RunId],
) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let codec = Codec::new();

    // Every stream folds, and none is left running.
    let mut streams: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    for recorded in support::all(log).await {
        streams
            .entry(recorded.stream.as_str().to_owned())
            .or_default()
            .push(recorded);
    }
    let mut states = HashMap::new();
    for (stream, events) in &streams {
        let state = RunState::from_stream(&codec, events)
            .map_err(|e| format!("stream {stream} does not fold: {e}"))?
            .ok_or_else(|| format!("stream {stream} is empty"))?;
        if !state.is_finished() {
            return Err(format!(
                "stream {stream} ({} {}, step of {:?}) is left running: {:?}",
                state.target,
                state.operation,
                state.parent_run_id,
                support::shape(&support::events(log, state.run_id).await)
            ));
        }
        states.insert(state.run_id, state);
    }
    let (_, unfinished) = find_unfinished(&**log, &codec)
        .await
        .map_err(|e| format!("find_unfinished failed: {e}"))?;
    if !unfinished.is_empty() {
        let open: Vec<RunId> = unfinished.iter().map(|u| u.run_id()).collect();
        return Err(format!("find_unfinished still finds {open:?}"));
    }

    let vendor = vendor.state.lock().unwrap();
    let sid_of = |body: &str| -> Option<String> {
        vendor
            .messages
            .iter()
            .find(|m| m["body"].as_str() == Some(body))
            .and_then(|m| m["sid"].as_str().map(str::to_owned))
    };
    for (r, run) in schedule.runs.iter().enumerate() {
        let state = states
            .get(&run_ids[r])
            .ok_or_else(|| format!("run {r} is not in the log"))?;
        let succeeded = state.status == RunStatus::Succeeded;
        if succeeded {
            tally.runs_succeeded += 1;
        } else {
            tally.runs_failed += 1;
            match state.error.as_ref().map(|e| e.kind) {
                Some(ErrorKind::InDoubt) => tally.in_doubt += 1,
                Some(ErrorKind::Cancelled) => tally.cancelled += 1,
                _ => {}
            }
        }
        let (mut sends, mut reads) = (0, 0);
        for (s, step) in run.steps.iter().enumerate() {
            if let StepPlan::Read(_) = step {
                // A read recorded succeeded was answered by the vendor.
                reads += 1;
                let sid = read_sid(r, s);
                let step_id = run_ids[r].step(&format!("twilio.sms_status#{reads}"));
                let read_ok = states
                    .get(&step_id)
                    .is_some_and(|s| s.status == RunStatus::Succeeded);
                if read_ok && vendor.reads.get(&sid).copied().unwrap_or(0) == 0 {
                    return Err(format!(
                        "read {sid} is recorded succeeded, but the vendor never got it"
                    ));
                }
                continue;
            }
            sends += 1;
            let body = body(r, s);
            let requests = vendor.sends.get(&body).cloned().unwrap_or_default();
            let with_effect = requests.iter().filter(|a| a.may_have_had_effect()).count();
            tally.sends_with_effect += with_effect as u64;
            if with_effect > 1 {
                return Err(format!(
                    "step {body}: the vendor got {with_effect} requests that may have had an \
                     effect (answers in turn: {requests:?})"
                ));
            }
            let acted = vendor
                .messages
                .iter()
                .filter(|m| m["body"].as_str() == Some(body.as_str()))
                .count();
            let step_id = run_ids[r].step(&format!("twilio.send_sms#{sends}"));
            let step_state = states.get(&step_id);
            if let Some(step_state) = step_state
                && step_state.status == RunStatus::Succeeded
            {
                let output = step_state.output.clone().unwrap_or_default();
                if output["reconciled"] == json!(true) {
                    tally.reconciled += 1;
                }
                let recorded_sid = output["sid"].as_str().map(str::to_owned);
                if recorded_sid.is_none() || recorded_sid != sid_of(&body) {
                    return Err(format!(
                        "step {body} is recorded succeeded with {output}, but the vendor holds \
                         {:?} (answers in turn: {requests:?})",
                        sid_of(&body)
                    ));
                }
            }
            if succeeded {
                if acted != 1 {
                    return Err(format!(
                        "run {r} succeeded, but the vendor acted on step {body} {acted} times \
                         (answers in turn: {requests:?})"
                    ));
                }
                let step_ok = step_state.is_some_and(|s| s.status == RunStatus::Succeeded);
                let output_sid = state.output.as_ref().and_then(|o| o[s]["sid"].as_str());
                if !step_ok || output_sid != sid_of(&body).as_deref() {
                    return Err(format!(
                        "run {r} succeeded with {:?}, but step {body} is recorded {:?} and the \
                         vendor holds {:?}",
                        state.output,
                        step_state.map(|s| s.status),
                        sid_of(&body)
                    ));
                }
            }
        }
    }
    Ok(tally)
}

#[test]
fn random_schedules_never_send_twice_and_every_run_ends() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        // Failing schedules are kept, and tried first, beside this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/random_schedules_never_send_twice.proptest-regressions"
        )))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let total = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let shared = Arc::clone(&total);
    let result = runner.run(&schedule(), move |schedule| {
        let outcome = actix::System::new().block_on(async {
            match tokio::time::timeout(SETTLE * 4, run_schedule(&schedule)).await {
                Ok(outcome) => outcome,
                Err(_) => Err("the schedule did not finish in time".to_owned()),
            }
        });
        match outcome {
            Ok(tally) => {
                shared.lock().unwrap().add(tally);
                Ok(())
            }
            Err(why) => Err(TestCaseError::fail(why)),
        }
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, schedule)) => {
            panic!("{why}\nminimal failing schedule: {schedule:#?}")
        }
        Err(e) => panic!("{e}"),
    }
    eprintln!(
        "{cases} schedules in {:?}: {:?}",
        started.elapsed(),
        total.lock().unwrap()
    );
}
