//! The in-memory transaction log: every event in `$all` order with the log
//! position EventStoreDB would give it, an index per stream, and the server's
//! rules for expected revisions and idempotent event ids.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use regex::Regex;
use uuid::Uuid;

/// Bytes a record takes in the log besides its variable parts, so positions
/// advance by a record's size as in EventStoreDB's transaction file (they
/// are byte offsets, not counters).
const RECORD_OVERHEAD: u64 = 80;

/// The `created` time EventStoreDB's gRPC API sends: 100 ns ticks since the
/// Unix epoch.
fn ticks_since_unix_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_nanos() / 100) as i64)
        .unwrap_or(0)
}

/// One stored event.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) id: Uuid,
    pub(crate) stream: String,
    pub(crate) revision: u64,
    /// Commit and prepare position (equal for every event written through
    /// gRPC: each is its own implicitly committed prepare record).
    pub(crate) position: u64,
    /// The position just past the record.
    pub(crate) post_position: u64,
    pub(crate) event_type: String,
    pub(crate) content_type: String,
    pub(crate) created: i64,
    pub(crate) custom_metadata: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// An event proposed by an append.
#[derive(Clone, Debug)]
pub(crate) struct Proposed {
    pub(crate) id: Uuid,
    pub(crate) event_type: String,
    pub(crate) content_type: String,
    pub(crate) custom_metadata: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// What an append expects the stream to be at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    Any,
    NoStream,
    StreamExists,
    Revision(u64),
}

/// How an append ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    /// Written now, or found already written with the same event ids
    /// (idempotent): the stream's revision after the write and the position
    /// of the write's first event.
    Written {
        current_revision: Option<u64>,
        position: Option<u64>,
    },
    /// The expectation did not hold; nothing was written.
    WrongExpectedVersion {
        current: Option<u64>,
        expected: Expected,
    },
}

/// Which way to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Forwards,
    Backwards,
}

/// Where a stream read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFrom {
    Start,
    End,
    Revision(u64),
}

/// Where an `$all` read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllFrom {
    Start,
    End,
    /// A (commit, prepare) position.
    Position(u64, u64),
}

/// A server-side filter on `$all` reads and subscriptions.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    on_stream: bool,
    matcher: Matcher,
}

#[derive(Clone, Debug)]
enum Matcher {
    Prefixes(Vec<String>),
    Regex(Regex),
}

impl Filter {
    /// A filter on stream names (`on_stream`) or event types, by prefixes
    /// when any are given (as the server does), otherwise by regex.
    pub(crate) fn new(on_stream: bool, regex: &str, prefixes: Vec<String>) -> Result<Self, String> {
        let matcher = if !prefixes.is_empty() {
            Matcher::Prefixes(prefixes)
        } else {
            Matcher::Regex(Regex::new(regex).map_err(|e| format!("invalid filter regex: {e}"))?)
        };
        Ok(Self { on_stream, matcher })
    }

    pub(crate) fn allows(&self, e: &Stored) -> bool {
        let subject = if self.on_stream {
            &e.stream
        } else {
            &e.event_type
        };
        match &self.matcher {
            Matcher::Prefixes(p) => p.iter().any(|p| subject.starts_with(p.as_str())),
            Matcher::Regex(r) => r.is_match(subject),
        }
    }
}

/// Every event, in `$all` order, and an index of each stream's events.
#[derive(Debug, Default)]
pub(crate) struct Log {
    events: Vec<Stored>,
    streams: HashMap<String, Vec<usize>>,
    next_position: u64,
}

impl Log {
    /// The number of events stored (the index the next one will get).
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The event at index `i` of `$all`.
    pub(crate) fn get(&self, i: usize) -> Option<&Stored> {
        self.events.get(i)
    }

    /// The index of the first event of `$all` whose position is at least `position`.
    pub(crate) fn index_at_or_after(&self, position: u64) -> usize {
        self.events.partition_point(|e| e.position < position)
    }

    fn last_revision(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).map(|ix| ix.len() as u64 - 1)
    }

    fn stream_event(&self, stream: &str, revision: u64) -> Option<&Stored> {
        let ix = self.streams.get(stream)?;
        ix.get(usize::try_from(revision).ok()?)
            .map(|&i| &self.events[i])
    }

    /// Whether `proposed` was already written to `stream` starting at
    /// `first_revision`: `Some(true)` all of it, `Some(false)` only a part
    /// (EventStoreDB's "corrupted idempotency", reported as a wrong expected
    /// version), `None` not at all.
    fn written_at(&self, stream: &str, first_revision: u64, proposed: &[Proposed]) -> Option<bool> {
        let first = self.stream_event(stream, first_revision)?;
        if first.id != proposed[0].id {
            return None;
        }
        let all = proposed.iter().enumerate().all(|(k, p)| {
            self.stream_event(stream, first_revision + k as u64)
                .is_some_and(|e| e.id == p.id)
        });
        Some(all)
    }

    /// Appends `proposed` to `stream` if it is at `expected`, all or nothing,
    /// with EventStoreDB's idempotency: the same event ids appended again at
    /// the same expected revision (or at `Any` / `StreamExists`) succeed
    /// without writing anything.
    pub(crate) fn append(
        &mut self,
        stream: &str,
        expected: Expected,
        proposed: Vec<Proposed>,
    ) -> AppendOutcome {
        let current = self.last_revision(stream);
        if proposed.is_empty() {
            return if accepts(expected, current) {
                AppendOutcome::Written {
                    current_revision: current,
                    position: None,
                }
            } else {
                AppendOutcome::WrongExpectedVersion { current, expected }
            };
        }
        if let Some(outcome) = self.settled(stream, expected, current, &proposed) {
            return outcome;
        }
        self.write(stream, current, proposed)
    }

    /// The outcome of appending `proposed` (not empty) to `stream`, now at
    /// `current`, when it writes nothing: a wrong expected version, or a
    /// retry of a write that already happened. `None`: write it.
    fn settled(
        &self,
        stream: &str,
        expected: Expected,
        current: Option<u64>,
        proposed: &[Proposed],
    ) -> Option<AppendOutcome> {
        let wrong = AppendOutcome::WrongExpectedVersion { current, expected };
        match expected {
            Expected::NoStream | Expected::Revision(_) => {
                let exp = match expected {
                    Expected::Revision(r) => Some(r),
                    _ => None,
                };
                if exp != current {
                    // The revision this append's first event would take.
                    let first = exp.map_or(0, |r| r + 1);
                    if current.is_some_and(|c| first <= c) {
                        // The stream moved past the expectation: a retry of
                        // a write that already happened, or a conflict.
                        return Some(
                            self.idempotent_from(stream, first, proposed, wrong)
                                .unwrap_or(wrong),
                        );
                    }
                    return Some(wrong);
                }
            }
            Expected::Any | Expected::StreamExists => {
                if expected == Expected::StreamExists && current.is_none() {
                    return Some(wrong);
                }
                if let Some(ix) = self.streams.get(stream) {
                    let first_id = proposed[0].id;
                    if let Some(k) = ix.iter().position(|&i| self.events[i].id == first_id)
                        && let Some(outcome) =
                            self.idempotent_from(stream, k as u64, proposed, wrong)
                    {
                        return Some(outcome);
                    }
                }
            }
        }
        None
    }

    /// The outcome of a retry of `proposed` found written to `stream` from
    /// `first_revision` on: the first write's when all of it was, `wrong`
    /// when only a part was. `None`: not written there.
    fn idempotent_from(
        &self,
        stream: &str,
        first_revision: u64,
        proposed: &[Proposed],
        wrong: AppendOutcome,
    ) -> Option<AppendOutcome> {
        let all = self.written_at(stream, first_revision, proposed)?;
        Some(if all {
            AppendOutcome::Written {
                current_revision: Some(first_revision + proposed.len() as u64 - 1),
                position: self
                    .stream_event(stream, first_revision)
                    .map(|e| e.position),
            }
        } else {
            wrong
        })
    }

    /// Stores `proposed` (not empty) at the end of `stream`, now at
    /// `current`, and of `$all`.
    fn write(
        &mut self,
        stream: &str,
        current: Option<u64>,
        proposed: Vec<Proposed>,
    ) -> AppendOutcome {
        let mut revision = current.map_or(0, |c| c + 1);
        let mut first_position = None;
        let created = ticks_since_unix_epoch();
        for p in proposed {
            let size = RECORD_OVERHEAD
                + (stream.len() + p.event_type.len() + p.data.len() + p.custom_metadata.len())
                    as u64;
            let position = self.next_position;
            self.next_position += size;
            first_position.get_or_insert(position);
            let index = self.events.len();
            self.events.push(Stored {
                id: p.id,
                stream: stream.to_string(),
                revision,
                position,
                post_position: position + size,
                event_type: p.event_type,
                content_type: p.content_type,
                created,
                custom_metadata: p.custom_metadata,
                data: p.data,
            });
            self.streams
                .entry(stream.to_string())
                .or_default()
                .push(index);
            revision += 1;
        }
        AppendOutcome::Written {
            current_revision: Some(revision - 1),
            position: first_position,
        }
    }

    /// Reads up to `count` events of `stream`; `None` when it does not exist.
    pub(crate) fn read_stream(
        &self,
        stream: &str,
        dir: Dir,
        from: StreamFrom,
        count: u64,
    ) -> Option<Vec<Stored>> {
        let ix = self.streams.get(stream)?;
        let n = ix.len() as u64;
        let take = usize::try_from(count).unwrap_or(usize::MAX);
        let revisions: Vec<u64> = match (dir, from) {
            (Dir::Forwards, StreamFrom::Start) => (0..n).take(take).collect(),
            (Dir::Forwards, StreamFrom::End) => Vec::new(),
            (Dir::Forwards, StreamFrom::Revision(r)) => (r.min(n)..n).take(take).collect(),
            (Dir::Backwards, StreamFrom::End) => (0..n).rev().take(take).collect(),
            (Dir::Backwards, StreamFrom::Start) => (0..n.min(1)).take(take).collect(),
            (Dir::Backwards, StreamFrom::Revision(r)) => {
                (0..n.min(r.saturating_add(1))).rev().take(take).collect()
            }
        };
        Some(
            revisions
                .into_iter()
                .map(|r| self.events[ix[r as usize]].clone())
                .collect(),
        )
    }

    /// Reads up to `count` events of `$all` that `filter` allows. Forwards,
    /// the event at the start position is included; backwards from a
    /// position, only events that end at or before it are (as the server's
    /// `TFPos` comparisons do).
    pub(crate) fn read_all(
        &self,
        dir: Dir,
        from: AllFrom,
        count: u64,
        filter: Option<&Filter>,
    ) -> Vec<Stored> {
        let take = usize::try_from(count).unwrap_or(usize::MAX);
        let keep = |e: &&Stored| filter.is_none_or(|f| f.allows(e));
        match (dir, from) {
            (Dir::Forwards, AllFrom::End) | (Dir::Backwards, AllFrom::Start) => Vec::new(),
            (Dir::Forwards, AllFrom::Start) => self
                .events
                .iter()
                .filter(keep)
                .take(take)
                .cloned()
                .collect(),
            (Dir::Forwards, AllFrom::Position(commit, prepare)) => {
                let start = self.index_at_or_after(commit.min(prepare));
                self.events[start..]
                    .iter()
                    .filter(|e| (e.position, e.position) >= (commit, prepare))
                    .filter(keep)
                    .take(take)
                    .cloned()
                    .collect()
            }
            (Dir::Backwards, AllFrom::End) => self
                .events
                .iter()
                .rev()
                .filter(keep)
                .take(take)
                .cloned()
                .collect(),
            (Dir::Backwards, AllFrom::Position(commit, prepare)) => self
                .events
                .iter()
                .rev()
                .filter(|e| (e.post_position, e.post_position) <= (commit, prepare))
                .filter(keep)
                .take(take)
                .cloned()
                .collect(),
        }
    }

    /// The position just past the last record, and the last event's position.
    pub(crate) fn last_position(&self) -> Option<u64> {
        self.events.last().map(|e| e.position)
    }
}

fn accepts(expected: Expected, current: Option<u64>) -> bool {
    match expected {
        Expected::Any => true,
        Expected::NoStream => current.is_none(),
        Expected::StreamExists => current.is_some(),
        Expected::Revision(r) => current == Some(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: Uuid) -> Proposed {
        Proposed {
            id,
            event_type: "t".into(),
            content_type: "application/octet-stream".into(),
            custom_metadata: Vec::new(),
            data: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_retried_append_is_idempotent_and_a_partial_retry_conflicts() {
        let mut log = Log::default();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = log.append("s", Expected::NoStream, vec![p(a), p(b)]);
        let AppendOutcome::Written {
            current_revision: Some(1),
            position: Some(pos),
        } = first
        else {
            panic!("first append: {first:?}")
        };
        // The same ids at the same expectation: success, nothing written.
        assert_eq!(log.append("s", Expected::NoStream, vec![p(a), p(b)]), first);
        assert_eq!(log.append("s", Expected::Any, vec![p(a), p(b)]), first);
        assert_eq!(log.len(), 2);
        // Only a part of them: a conflict.
        assert_eq!(
            log.append("s", Expected::NoStream, vec![p(a), p(c)]),
            AppendOutcome::WrongExpectedVersion {
                current: Some(1),
                expected: Expected::NoStream
            }
        );
        // New ids at a stale revision: a conflict.
        assert!(matches!(
            log.append("s", Expected::Revision(0), vec![p(c)]),
            AppendOutcome::WrongExpectedVersion {
                current: Some(1),
                ..
            }
        ));
        assert_eq!(log.len(), 2);
        assert!(pos < log.get(1).unwrap().position);
    }

    #[test]
    fn positions_are_byte_offsets_and_reads_honour_them() {
        let mut log = Log::default();
        for _ in 0..3 {
            log.append("s", Expected::Any, vec![p(Uuid::new_v4())]);
        }
        let all = log.read_all(Dir::Forwards, AllFrom::Start, 10, None);
        assert_eq!(all.len(), 3);
        assert!(all[1].position > all[0].position + 1);
        let from_second = log.read_all(
            Dir::Forwards,
            AllFrom::Position(all[1].position, all[1].position),
            10,
            None,
        );
        assert_eq!(from_second[0].id, all[1].id);
        let before_second = log.read_all(
            Dir::Backwards,
            AllFrom::Position(all[1].position, all[1].position),
            10,
            None,
        );
        assert_eq!(before_second.len(), 1);
        assert_eq!(before_second[0].id, all[0].id);
    }
}
