//! Recovery: finds every run whose stream has a `RunStarted` and no
//! terminal event (the process died mid-run). [`recover_interrupted`] closes
//! them all with `RunFailed{interrupted}`; [`find_unfinished`] hands them to
//! the orchestrator, which resumes the agent runs it can
//! ([`crate::ResumeInterrupted`]) and closes the rest. [`UnfinishedIndex`]
//! keeps the unfinished runs current by reading on from where it stopped,
//! for nodes that look for the runs of expired owners again and again.
//!
//! Without a full scan: [`UnfinishedIndex::seeded`] starts from a
//! [`RecoverySeed`] (the runs unfinished as of a position, and a way to look
//! up a run's steps: the AgentRun table, wired in by the binary) and reads
//! only those runs' streams and the log after the seed's position. Its
//! result is the full scan's.

use std::collections::{BTreeSet, HashMap};

use neonhub_events::{
    Codec, Direction, ErrorKind, EventStore, ExpectedRevision, Metadata, NodeId, Position,
    ReadFrom, RecordedEvent, Revision, RunError, RunEvent, RunFailed, RunId, RunState, Timestamp,
};

use crate::error::{Error, Result};

/// Events read per page while scanning the log.
const PAGE: usize = 1024;

/// What recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Run events read.
    pub events_scanned: u64,
    /// Runs closed with `RunFailed{interrupted}`, in log order of their start.
    pub interrupted: Vec<RunId>,
    /// Agent runs given a new attempt (resumed), in log order of their start.
    pub resumed: Vec<RunId>,
}

/// A run without a terminal event: its state (the one fold), and what
/// closing or resuming it needs from the envelopes (its stream's last
/// revision, the metadata its events carry, when its current attempt began,
/// how many of its attempts were resumes).
#[derive(Clone, Debug, PartialEq)]
pub struct Unfinished {
    pub(crate) state: RunState,
    pub(crate) last: Revision,
    pub(crate) metadata: Metadata,
    pub(crate) attempt_started_at: Timestamp,
    pub(crate) resumes: u32,
    /// `RunStarted.node` of its latest attempt.
    pub(crate) owner: Option<NodeId>,
    /// Its last event is a `RunFailed{will_retry}`: it stopped while it
    /// waited to retry, its failed attempt recorded; resuming it starts the
    /// next attempt, not before this time (`RunFailed.retry_at`, or the
    /// failure's own time in a log written before that field).
    pub(crate) waiting_to_retry: Option<Timestamp>,
    /// When the log last heard of the run: the latest `recorded_at` of its
    /// events and of its steps' events. A resume counts the time after it
    /// as not executing.
    pub(crate) last_activity: Timestamp,
}

impl Unfinished {
    /// The run.
    pub fn run_id(&self) -> RunId {
        self.state.run_id
    }

    /// The node executing its latest attempt (`None`: the embedded store, or
    /// a log written before runs named their node).
    pub fn owner(&self) -> Option<&NodeId> {
        self.owner.as_ref()
    }

    /// The agent run that made this step, `None` for an agent run.
    pub fn parent(&self) -> Option<RunId> {
        self.state.parent_run_id
    }
}

/// The runs a scan of the log is following: the open ones, and the ones
/// that may be reopened later in the log (ended `in_doubt`, or steps ended
/// `cancelled`: see [`RunState::may_reopen`]).
#[derive(Default)]
struct Tracked {
    open: HashMap<RunId, Unfinished>,
    reopenable: HashMap<RunId, Unfinished>,
}

impl Tracked {
    /// Whether `run_id` is followed (open, or ended in a way that may reopen).
    fn knows(&self, run_id: &RunId) -> bool {
        self.open.contains_key(run_id) || self.reopenable.contains_key(run_id)
    }
}

/// Folds `recorded` (a run event) into the tracked runs.
fn track(tracked: &mut Tracked, recorded: &RecordedEvent, event: RunEvent) -> Result<()> {
    let invalid = |reason| neonhub_events::Error::InvalidRun {
        stream: recorded.stream.as_str().to_owned(),
        position: recorded.position,
        reason,
    };
    let run_id = event.run_id();
    match event {
        RunEvent::Started(s) if s.attempt == 1 => {
            let parent = s.parent_run_id;
            let attempt_started_at = s.started_at;
            let owner = s.node.clone();
            let state = RunState::start(s, recorded.position).map_err(invalid)?;
            tracked.open.insert(
                run_id,
                Unfinished {
                    state,
                    last: recorded.revision,
                    metadata: recorded.metadata,
                    attempt_started_at,
                    resumes: 0,
                    owner,
                    waiting_to_retry: None,
                    last_activity: recorded.recorded_at,
                },
            );
            if let Some(parent) = parent {
                heard_of(tracked, parent, recorded.recorded_at);
            }
        }
        event => {
            let mut parent = None;
            let apply = |run: &mut Unfinished| {
                if let RunEvent::Started(s) = &event {
                    run.attempt_started_at = s.started_at;
                    run.resumes += u32::from(s.resumed);
                    run.owner = s.node.clone();
                }
                run.waiting_to_retry = match &event {
                    RunEvent::Failed(f) => f.retry_due(),
                    _ => None,
                };
                run.last = recorded.revision;
                run.last_activity = run.last_activity.max(recorded.recorded_at);
                parent = run.state.parent_run_id;
                run.state.apply(event, recorded.position).map_err(invalid)
            };
            if let Some(run) = tracked.open.get_mut(&run_id) {
                if apply(run)? {
                    let run = tracked.open.remove(&run_id).expect("found above");
                    if run.state.may_reopen() {
                        tracked.reopenable.insert(run_id, run);
                    }
                }
            } else if let Some(mut run) = tracked.reopenable.remove(&run_id) {
                // Resolved, or executed again.
                apply(&mut run)?;
                if !run.state.is_finished() {
                    tracked.open.insert(run_id, run);
                }
            } else {
                return Err(invalid(neonhub_events::FoldError::NotStarted { run_id }).into());
            }
            if let Some(parent) = parent {
                heard_of(tracked, parent, recorded.recorded_at);
            }
        }
    }
    Ok(())
}

/// A step of run `run_id` recorded an event at `at`: the run was alive.
fn heard_of(tracked: &mut Tracked, run_id: RunId, at: Timestamp) {
    if let Some(run) = tracked.open.get_mut(&run_id) {
        run.last_activity = run.last_activity.max(at);
    }
}

/// Scans the whole log and closes every unfinished run with
/// `RunFailed{kind: interrupted, will_retry: false}` at its exact next
/// revision. Run it before accepting runs: a run closed here that was in
/// fact still running elsewhere loses the race on its revision, and is left
/// alone. Memory is bounded by the number of unfinished runs.
///
/// # Errors
/// The store's, or a run event that does not decode or fit its run.
pub async fn recover_interrupted(store: &dyn EventStore, codec: &Codec) -> Result<RecoveryReport> {
    let (events_scanned, unfinished) = find_unfinished(store, codec).await?;
    let interrupted = close_interrupted(store, codec, unfinished).await?;
    Ok(RecoveryReport {
        events_scanned,
        interrupted,
        resumed: Vec::new(),
    })
}

/// Scans the whole log for unfinished runs; returns the run events read
/// and the runs, in log order of their start.
///
/// # Errors
/// The store's, or a run event that does not decode or fit its run.
pub async fn find_unfinished(
    store: &dyn EventStore,
    codec: &Codec,
) -> Result<(u64, Vec<Unfinished>)> {
    let mut index = UnfinishedIndex::default();
    index.catch_up(store, codec).await?;
    Ok(index.into_unfinished())
}

/// [`find_unfinished`] without a full scan: the runs `seed` names and the
/// log after its position (see [`UnfinishedIndex::seeded`]). The same runs,
/// in the same order, in the same state, as [`find_unfinished`] finds;
/// returns the run events read and the runs.
///
/// # Errors
/// The store's, the seed's ([`Error::Seed`]), or a run event that does not
/// decode or fit its run.
pub async fn find_unfinished_from(
    store: &dyn EventStore,
    codec: &Codec,
    seed: RecoverySeed,
) -> Result<(u64, Vec<Unfinished>)> {
    Ok(UnfinishedIndex::seeded(store, codec, seed)
        .await?
        .into_unfinished())
}

/// Looks up the steps (child runs) of runs, in the persisted state a
/// [`RecoverySeed`] comes from (the binary answers from the AgentRun
/// table's `parent_run_id`).
pub trait StepDirectory: Send {
    /// Every `(run, step)` pair whose step is a child run of one of `runs`
    /// and started before the seed's position (steps started later may be
    /// listed too; they are ignored).
    ///
    /// # Errors
    /// Why the persisted state could not be read (the text of
    /// [`Error::Seed`]).
    fn steps_of(&mut self, runs: &[RunId]) -> std::result::Result<Vec<(RunId, RunId)>, String>;
}

/// What recovery starts from instead of a scan of the whole log: every run
/// (agent run or step) unfinished as of `from`, and a directory of their
/// steps, as persisted state (the AgentRun table at its checkpoint) knows
/// them. It must be exact as of `from`: what the fold gives for the log
/// before it.
pub struct RecoverySeed {
    from: Position,
    open: Vec<RunId>,
    steps: Box<dyn StepDirectory>,
}

impl std::fmt::Debug for RecoverySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverySeed")
            .field("from", &self.from)
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl RecoverySeed {
    /// The runs `open` as of `from` (every event before it accounted for),
    /// with `steps` to look up their steps.
    pub fn new(from: Position, open: Vec<RunId>, steps: Box<dyn StepDirectory>) -> Self {
        Self { from, open, steps }
    }

    /// The position it is exact as of.
    pub fn from(&self) -> Position {
        self.from
    }

    /// The runs unfinished as of [`Self::from`].
    pub fn runs(&self) -> &[RunId] {
        &self.open
    }
}

/// Whether `e` is an event of a run whose start is not in the log read
/// (it was archived).
fn begun_in_archive(e: &crate::Error) -> bool {
    matches!(
        e,
        crate::Error::Store(neonhub_events::Error::InvalidRun {
            reason: neonhub_events::FoldError::NotStarted { .. },
            ..
        })
    )
}

/// The unfinished runs of a log, kept current by [`Self::catch_up`], which
/// reads only the events appended since the last one: the first catch-up
/// reads the whole log, later ones cost what was appended meanwhile. Memory
/// is bounded by the runs open (or ended `in_doubt`) at the head.
///
/// A seeded index ([`Self::seeded`]) follows only the runs unfinished as of
/// the seed and those the log names after it; a run that ended before the
/// seed in a way that may reopen (`in_doubt`, a `cancelled` step) is read
/// from its stream, with its steps, the first time the log names it again.
#[derive(Default)]
pub struct UnfinishedIndex {
    tracked: Tracked,
    from: Position,
    scanned: u64,
    seed: Option<Seeded>,
}

/// What a seeded index keeps of its seed: its position and the directory of
/// steps, for the runs that reopen later.
struct Seeded {
    from: Position,
    steps: Box<dyn StepDirectory>,
}

impl std::fmt::Debug for UnfinishedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnfinishedIndex")
            .field("open", &self.tracked.open.len())
            .field("from", &self.from)
            .field("scanned", &self.scanned)
            .field("seeded_from", &self.seed.as_ref().map(|s| s.from))
            .finish_non_exhaustive()
    }
}

impl UnfinishedIndex {
    /// The index as a full scan would leave it at the head, built from
    /// `seed` instead: the streams of the runs it names unfinished (and of
    /// their steps, for when the log last heard of them) up to its
    /// position, then the log from there. Its cost is those streams and the
    /// log after the seed's position, not the history.
    ///
    /// # Errors
    /// The store's, the seed's ([`Error::Seed`]), or a run event that does
    /// not decode or fit its run (a seed that does not match the log may
    /// also show as one).
    pub async fn seeded(store: &dyn EventStore, codec: &Codec, seed: RecoverySeed) -> Result<Self> {
        let RecoverySeed { from, open, steps } = seed;
        let mut index = UnfinishedIndex {
            from,
            seed: Some(Seeded { from, steps }),
            ..UnfinishedIndex::default()
        };
        index.materialize(store, codec, &open).await?;
        index.catch_up(store, codec).await?;
        Ok(index)
    }

    /// Folds, as of the seed's position, the streams of `runs` and of their
    /// steps (in log order, as a scan would have met them), and follows the
    /// ones among `runs` still open or reopenable then.
    async fn materialize(
        &mut self,
        store: &dyn EventStore,
        codec: &Codec,
        runs: &[RunId],
    ) -> Result<()> {
        let Some(seed) = &mut self.seed else {
            return Ok(());
        };
        if runs.is_empty() {
            return Ok(());
        }
        let from = seed.from;
        let steps = seed.steps.steps_of(runs).map_err(Error::Seed)?;
        let streams: BTreeSet<RunId> = runs
            .iter()
            .copied()
            .chain(steps.into_iter().map(|(_, step)| step))
            .collect();
        let mut events = Vec::new();
        for run_id in streams {
            let stream = run_id.stream();
            let mut next = ReadFrom::Start;
            loop {
                let page = store
                    .read_stream(&stream, Direction::Forwards, next, PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                let (full, past) = (page.len() == PAGE, last.position >= from);
                next = ReadFrom::Revision(last.revision.next());
                events.extend(page.into_iter().filter(|e| e.position < from));
                if !full || past {
                    break;
                }
            }
        }
        events.sort_by_key(|e| e.position);
        let mut scratch = Tracked::default();
        for recorded in &events {
            let event = codec.decode(recorded)?;
            track(&mut scratch, recorded, event)?;
        }
        self.scanned += events.len() as u64;
        for run_id in runs {
            if let Some(run) = scratch.open.remove(run_id) {
                self.tracked.open.insert(*run_id, run);
            } else if let Some(run) = scratch.reopenable.remove(run_id) {
                self.tracked.reopenable.insert(*run_id, run);
            }
        }
        Ok(())
    }

    /// The runs open at the head, in log order of their start, and the run
    /// events read.
    fn into_unfinished(self) -> (u64, Vec<Unfinished>) {
        let mut unfinished: Vec<Unfinished> = self.tracked.open.into_values().collect();
        unfinished.sort_by_key(|o| o.state.first_position);
        (self.scanned, unfinished)
    }

    /// Reads the log from where the last catch-up stopped to its head.
    /// Returns the run events read (by a seeded index, also those of the
    /// streams of runs that reopened).
    ///
    /// # Errors
    /// The store's, or a run event that does not decode or fit its run.
    pub async fn catch_up(&mut self, store: &dyn EventStore, codec: &Codec) -> Result<u64> {
        let before = self.scanned;
        let archived = self.skip_archived(store).await?;
        loop {
            let page = store.read_all(self.from, PAGE).await?;
            let Some(last) = page.last() else { break };
            for recorded in &page {
                if recorded.stream.run_id().is_none() {
                    continue;
                }
                let event = codec.decode(recorded)?;
                self.scanned += 1;
                let run_id = event.run_id();
                let new = matches!(&event, RunEvent::Started(s) if s.attempt == 1);
                if !new && self.seed.is_some() && !self.tracked.knows(&run_id) {
                    // Ended before the seed and reopened now (or an event
                    // that fits no run: the fold says so below). A run whose
                    // first events were archived cannot be read back: it is
                    // skipped as the full scan skips it.
                    match self.materialize(store, codec, &[run_id]).await {
                        Err(crate::Error::Store(neonhub_events::Error::Archived { .. }))
                            if archived => {}
                        other => other?,
                    }
                }
                match track(&mut self.tracked, recorded, event) {
                    Err(e) if archived && begun_in_archive(&e) => {}
                    other => other?,
                }
            }
            self.from = last.position.next();
        }
        Ok(self.scanned - before)
    }

    /// Starts the first catch-up at the store's oldest readable event when
    /// its oldest events were archived (`neonhub log archive`); returns
    /// whether they were. Runs begun in the archive are not tracked: they
    /// ended before the archive's cut-off, or are left as they are.
    async fn skip_archived(&mut self, store: &dyn EventStore) -> Result<bool> {
        let first = store.first_position().await?;
        if self.from < first {
            self.from = first;
        }
        Ok(first > Position::START)
    }

    /// Run events read by every catch-up so far.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// The nodes owning unfinished agent runs (not steps).
    pub fn owners(&self) -> BTreeSet<NodeId> {
        self.tracked
            .open
            .values()
            .filter(|run| run.parent().is_none())
            .filter_map(|run| run.owner().cloned())
            .collect()
    }

    /// The unfinished runs `claim` picks, in log order of their start: each
    /// run (not a step) for which `claim` says yes, with its open steps; and
    /// each open step whose run is not open, if `claim` says yes to the step.
    /// A step of an open run goes with its run, whoever its own owner was.
    pub fn select(&self, claim: impl Fn(&Unfinished) -> bool) -> Vec<Unfinished> {
        let open = &self.tracked.open;
        let mut picked: Vec<Unfinished> = open
            .values()
            .filter(|run| match run.parent() {
                None => claim(run),
                Some(parent) => match open.get(&parent) {
                    Some(parent) => claim(parent),
                    None => claim(run),
                },
            })
            .cloned()
            .collect();
        picked.sort_by_key(|o| o.state.first_position);
        picked
    }
}

/// Closes each of `runs` with `RunFailed{kind: interrupted}` at its exact
/// next revision; returns the ones closed (a run that moved on meanwhile is
/// left alone).
///
/// # Errors
/// The store's.
pub async fn close_interrupted(
    store: &dyn EventStore,
    codec: &Codec,
    runs: Vec<Unfinished>,
) -> Result<Vec<RunId>> {
    let mut closed = Vec::new();
    for run in runs {
        // It stopped when the log last heard of it, not now.
        let ended = run.last_activity.max(run.attempt_started_at);
        let run_id = run.state.run_id;
        let failed = RunFailed {
            run_id,
            attempt: run.state.attempts,
            error: RunError::new(
                ErrorKind::Interrupted,
                "the process stopped while the run was in flight",
            ),
            will_retry: false,
            retry_at: None,
            duration_micros: ended
                .as_micros()
                .saturating_sub(run.attempt_started_at.as_micros()),
            finished_at: ended,
        };
        let data = codec.encode(&RunEvent::Failed(failed), run.metadata)?;
        match store
            .append(
                &run_id.stream(),
                ExpectedRevision::Exact(run.last),
                vec![data],
            )
            .await
        {
            Ok(_) => closed.push(run_id),
            Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                tracing::info!(%run_id, "run moved on during recovery; left alone");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use neonhub_events::{EmbeddedLog, LogOptions, RunKind, RunStarted, RunSucceeded};
    use serde_json::json;

    use super::*;

    fn started(run_id: RunId, parent: Option<RunId>, attempt: u32, node: &str) -> RunEvent {
        RunEvent::Started(RunStarted {
            run_id,
            kind: if parent.is_some() {
                RunKind::Connector
            } else {
                RunKind::Agent
            },
            target: "sms".into(),
            operation: "run".into(),
            intent: None,
            input: json!({}),
            attempt,
            parent_run_id: parent,
            correlation_id: *run_id.as_uuid(),
            started_at: Timestamp(1),
            request_digest: None,
            step: parent.map(|_| "twilio.send_sms#1".to_owned()),
            resumed: attempt > 1,
            node: Some(NodeId::new(node).unwrap()),
            paused_micros: 0,
        })
    }

    async fn append(store: &EmbeddedLog, codec: &Codec, expected: ExpectedRevision, e: RunEvent) {
        let data = codec.encode(&e, Metadata::default()).unwrap();
        store
            .append(&e.run_id().stream(), expected, vec![data])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_index_reads_on_from_where_it_stopped_and_a_step_goes_with_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedLog::open(dir.path(), LogOptions::default()).unwrap();
        let codec = Codec::new();
        let (a_run, b_run) = (RunId::new(), RunId::new());
        let (a_step, b_step) = (
            a_run.step("twilio.send_sms#1"),
            b_run.step("twilio.send_sms#1"),
        );
        let new = ExpectedRevision::NoStream;
        append(&store, &codec, new, started(a_run, None, 1, "a")).await;
        append(&store, &codec, new, started(b_run, None, 1, "b")).await;
        // A step whose own start names another node still goes with its run.
        append(&store, &codec, new, started(a_step, Some(a_run), 1, "x")).await;
        append(&store, &codec, new, started(b_step, Some(b_run), 1, "b")).await;
        let mut index = UnfinishedIndex::default();
        assert_eq!(index.catch_up(&store, &codec).await.unwrap(), 4);
        let owners: Vec<String> = index.owners().iter().map(|n| n.to_string()).collect();
        assert_eq!(owners, ["a", "b"], "steps' owners are not listed");
        let ids = |runs: Vec<Unfinished>| runs.iter().map(Unfinished::run_id).collect::<Vec<_>>();
        let of_b = |run: &Unfinished| run.owner().is_some_and(|n| n.as_str() == "b");
        assert_eq!(ids(index.select(of_b)), [b_run, b_step]);
        let of_x = |run: &Unfinished| run.owner().is_some_and(|n| n.as_str() == "x");
        assert!(index.select(of_x).is_empty(), "a step goes with its run");

        // c resumes b's run: its owner is now c. a's run ends.
        let exact = |r| ExpectedRevision::Exact(Revision(r));
        append(&store, &codec, exact(0), started(b_run, None, 2, "c")).await;
        let done = RunEvent::Succeeded(RunSucceeded {
            run_id: a_step,
            attempt: 1,
            output: json!({}),
            duration_micros: 1,
            finished_at: Timestamp(2),
        });
        append(&store, &codec, exact(0), done).await;
        assert_eq!(
            index.catch_up(&store, &codec).await.unwrap(),
            2,
            "only the new events"
        );
        assert_eq!(index.scanned(), 6);
        assert!(index.select(of_b).is_empty());
        let of_c = |run: &Unfinished| run.owner().is_some_and(|n| n.as_str() == "c");
        assert_eq!(ids(index.select(of_c)), [b_run, b_step]);
        let of_a = |run: &Unfinished| run.owner().is_some_and(|n| n.as_str() == "a");
        assert_eq!(ids(index.select(of_a)), [a_run]);
        assert_eq!(index.catch_up(&store, &codec).await.unwrap(), 0);
    }
}
