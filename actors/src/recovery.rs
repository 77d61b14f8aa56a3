//! Start-up recovery: every run whose stream has a `RunStarted` and no
//! terminal event (the process died mid-run) gets `RunFailed{interrupted}`.

use std::collections::HashMap;

use neonhub_events::{
    Codec, ErrorKind, EventStore, ExpectedRevision, Metadata, Position, Revision, RunError,
    RunEvent, RunFailed, RunId, StreamId, Timestamp,
};

use crate::error::Result;

/// Events read per page while scanning the log.
const PAGE: usize = 1024;

/// What recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Run events read.
    pub events_scanned: u64,
    /// Runs closed with `RunFailed{interrupted}`, in log order of their start.
    pub interrupted: Vec<RunId>,
}

struct Open {
    stream: StreamId,
    last: Revision,
    attempt: u32,
    started_at: Timestamp,
    metadata: Metadata,
    first_position: Position,
}

/// Scans the whole log and closes every unfinished run with
/// `RunFailed{kind: interrupted, will_retry: false}` at its exact next
/// revision. Run it before accepting runs: a run closed here that was in
/// fact still running elsewhere loses the race on its revision, and is left
/// alone. Memory is bounded by the number of unfinished runs.
///
/// # Errors
/// The store's, or a run event that does not decode.
pub async fn recover_interrupted(store: &dyn EventStore, codec: &Codec) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let mut open: HashMap<RunId, Open> = HashMap::new();
    let mut from = Position::START;
    loop {
        let page = store.read_all(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for recorded in &page {
            if recorded.stream.run_id().is_none() {
                continue;
            }
            let event = codec.decode(recorded)?;
            report.events_scanned += 1;
            let run_id = event.run_id();
            match event {
                RunEvent::Started(s) => {
                    let entry = open.entry(run_id).or_insert_with(|| Open {
                        stream: recorded.stream.clone(),
                        last: recorded.revision,
                        attempt: s.attempt,
                        started_at: s.started_at,
                        metadata: recorded.metadata,
                        first_position: recorded.position,
                    });
                    entry.last = recorded.revision;
                    entry.attempt = s.attempt;
                    entry.started_at = s.started_at;
                }
                e if e.is_terminal() => {
                    open.remove(&run_id);
                }
                _ => {
                    if let Some(entry) = open.get_mut(&run_id) {
                        entry.last = recorded.revision;
                    }
                }
            }
        }
    }
    let mut unfinished: Vec<(RunId, Open)> = open.into_iter().collect();
    unfinished.sort_by_key(|(_, o)| o.first_position);
    let now = Timestamp::now();
    for (run_id, run) in unfinished {
        let failed = RunFailed {
            run_id,
            attempt: run.attempt,
            error: RunError::new(
                ErrorKind::Interrupted,
                "the process stopped while the run was in flight",
            ),
            will_retry: false,
            duration_micros: now.as_micros().saturating_sub(run.started_at.as_micros()),
            finished_at: now,
        };
        let data = codec.encode(&RunEvent::Failed(failed), run.metadata)?;
        match store
            .append(&run.stream, ExpectedRevision::Exact(run.last), vec![data])
            .await
        {
            Ok(_) => report.interrupted.push(run_id),
            Err(neonhub_events::Error::WrongExpectedVersion { .. }) => {
                tracing::info!(%run_id, "run moved on during recovery; left alone");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
