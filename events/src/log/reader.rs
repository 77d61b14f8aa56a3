//! Reading the embedded log: positioned reads of acknowledged records only,
//! by global position or by stream, and the catch-up-then-live subscription.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::embedded::Shared;
use super::format::{self, GROUP_HEADER_LEN, MAX_BODY_LEN};
use super::index::{Index, RecordRef, stream_key};
use crate::error::{Error, Result};
use crate::ids::{Position, StreamId};
use crate::store::{Direction, ReadFrom, RecordedEvent, SubscriptionSource};

/// Most bytes read with one `pread` by `read_all`.
const READ_CHUNK: u64 = 4 << 20;
/// Most bytes one `pread` of a stream's records spans.
const COALESCE: u64 = 64 << 10;
/// Events a subscription reads ahead of its consumer.
const SUBSCRIPTION_BATCH: usize = 512;
/// ...and at most this many bytes of them: a subscriber that stops taking
/// events (a stalled feed client) holds one such batch at most.
const SUBSCRIPTION_BATCH_BYTES: u64 = 256 << 10;

/// Reads up to `limit` acknowledged events from `from` in global order.
pub(crate) fn read_all(
    shared: &Shared,
    from: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>> {
    read_all_within(shared, from, limit, u64::MAX)
}

/// Like [`read_all`], stopping once `max_bytes` of records are read (but
/// reading at least one): what a caller holds stays bounded whatever the
/// size of the events.
pub(crate) fn read_all_within(
    shared: &Shared,
    from: Position,
    limit: usize,
    max_bytes: u64,
) -> Result<Vec<RecordedEvent>> {
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut read_bytes = 0u64;
    let mut position = from;
    let last_first = {
        let index = shared.index.read().expect("index lock");
        index.segments.last().map_or(Position::START, |s| s.first)
    };
    if from < last_first {
        // Reading sealed segments: some may have been archived meanwhile.
        super::archive::catch_up(shared)?;
    }
    let mut buf = Vec::new();
    while out.len() < limit && read_bytes < max_bytes {
        let (path, offsets) = {
            let index = shared.index.read().expect("index lock");
            if position >= index.head {
                break;
            }
            if position < index.archive.end() {
                return Err(Error::Archived {
                    stream: None,
                    position,
                    archive: index.archive.dir_of(position),
                });
            }
            let seg = &index.segments[index.segment_of(position)];
            let i = (position.0 - seg.first.0) as usize;
            let j = (seg.count() as usize).min(i + (limit - out.len()));
            (seg.path.clone(), seg.offsets(i, j))
        };
        // offsets[k] is where record i + k starts; the last is where the
        // range ends.
        let offsets = offsets.load(&shared.handles)?;
        let start = offsets[0];
        // Keep one read under READ_CHUNK bytes and within what is left of
        // `max_bytes` (but read at least one record).
        let chunk = READ_CHUNK.min(max_bytes - read_bytes);
        let within = offsets[1..].partition_point(|&o| o - start <= chunk);
        let count = within.max(1);
        let end = offsets[count];
        read_bytes += end - start;
        buf.resize((end - start) as usize, 0);
        shared
            .handles
            .get(&path)
            .and_then(|file| {
                file.read_exact_at(&mut buf, start)
                    .map_err(|e| Error::io(format!("read {}", path.display()), e))
            })
            .map_err(|e| archived_meanwhile(shared, &path, None, position, e))?;
        let mut at = 0usize;
        for _ in 0..count {
            if format::is_group_header(&buf[at..]) {
                at += GROUP_HEADER_LEN;
            }
            let record =
                format::decode_record(&buf[at..], MAX_BODY_LEN).map_err(|e| Error::Corruption {
                    segment: path.to_path_buf(),
                    offset: start + at as u64,
                    reason: format!("{e:?} on read"),
                })?;
            at += record.frame_len;
            out.push(record.to_recorded());
        }
        position = Position(position.0 + count as u64);
    }
    Ok(out)
}

/// Where the acknowledged record at `position` lives (its bytes may run on
/// over the next record's group header).
pub(crate) fn locate(shared: &Shared, position: Position) -> Result<Option<RecordRef>> {
    let Some((path, offsets)) = shared.index.read().expect("index lock").locate(position) else {
        return Ok(None);
    };
    let offsets = offsets.load(&shared.handles)?;
    Ok(Some(RecordRef {
        path,
        offset: offsets[0],
        len: (offsets[1] - offsets[0]) as usize,
        archived: None,
    }))
}

/// Reads up to `limit` events of one stream.
pub(crate) fn read_stream(
    shared: &Shared,
    stream: &StreamId,
    direction: Direction,
    from: ReadFrom,
    limit: usize,
) -> Result<Vec<RecordedEvent>> {
    super::archive::catch_up(shared)?;
    // The revisions to read, given the stream's length `n`.
    let window = |n: u64| match direction {
        Direction::Forwards => {
            let start = match from {
                ReadFrom::Start => 0,
                ReadFrom::End => n,
                ReadFrom::Revision(r) => r.0.min(n),
            };
            (start, start.saturating_add(limit as u64).min(n))
        }
        Direction::Backwards => {
            let end = match from {
                ReadFrom::Start => 1.min(n),
                ReadFrom::End => n,
                ReadFrom::Revision(r) => r.0.saturating_add(1).min(n),
            };
            (end.saturating_sub(limit as u64), end)
        }
    };
    let mut refs = Index::stream_refs(
        shared.index.read().expect("index lock"),
        &shared.handles,
        stream_key(stream.as_str().as_bytes()),
        window,
    )?;
    if direction == Direction::Backwards {
        refs.reverse();
    }
    let chosen: Vec<&RecordRef> = refs.iter().map(|(_, r)| r).collect();
    if let Some(first) = chosen.iter().filter_map(|r| r.archived).min() {
        return Err(Error::Archived {
            stream: Some(stream.clone()),
            position: first,
            archive: shared
                .index
                .read()
                .expect("index lock")
                .archive
                .dir_of(first),
        });
    }
    let mut out = Vec::with_capacity(chosen.len());
    let mut buf = Vec::new();
    let mut i = 0;
    while i < chosen.len() {
        // Records of the stream close together in one file are read with
        // one `pread` (a run's events are usually a few KiB apart): one
        // disk read instead of one per event on a cold cache.
        let first = chosen[i];
        let (mut lo, mut hi) = (first.offset, first.offset + first.len as u64);
        let mut j = i + 1;
        while let Some(r) = chosen.get(j) {
            let (a, b) = (r.offset, r.offset + r.len as u64);
            if !Arc::ptr_eq(&r.path, &first.path) || b.max(hi) - a.min(lo) > COALESCE {
                break;
            }
            (lo, hi) = (lo.min(a), hi.max(b));
            j += 1;
        }
        buf.resize((hi - lo) as usize, 0);
        shared
            .handles
            .get(&first.path)
            .and_then(|file| {
                file.read_exact_at(&mut buf, lo)
                    .map_err(|e| Error::io(format!("read {}", first.path.display()), e))
            })
            .map_err(|e| {
                let at = segment_first(&first.path).unwrap_or_default();
                archived_meanwhile(shared, &first.path, Some(stream), at, e)
            })?;
        for r in &chosen[i..j] {
            let at = (r.offset - lo) as usize;
            let record =
                format::decode_record(&buf[at..at + r.len], MAX_BODY_LEN).map_err(|e| {
                    Error::Corruption {
                        segment: r.path.to_path_buf(),
                        offset: r.offset,
                        reason: format!("{e:?} on read"),
                    }
                })?;
            out.push(record.to_recorded());
        }
        i = j;
    }
    Ok(out)
}

/// The first position of the segment file at `path`, from its name.
fn segment_first(path: &std::path::Path) -> Option<Position> {
    format::parse_segment_file_name(path.file_name()?.to_str()?).flatten()
}

/// `error`, from reading the segment at `path`; or [`Error::Archived`] when
/// `neonhub log archive`, run beside this process, moved that segment out
/// (the live manifest lists it).
pub(crate) fn archived_meanwhile(
    shared: &Shared,
    path: &std::path::Path,
    stream: Option<&StreamId>,
    position: Position,
    error: Error,
) -> Error {
    let Some(first) = segment_first(path) else {
        return error;
    };
    let manifest = shared.dir.join(super::manifest::LIVE_MANIFEST);
    match super::manifest::Manifest::read(shared.fs.as_ref(), &manifest, true) {
        Ok(Some(m)) => match m.segments.iter().find(|s| s.first == first.0) {
            Some(s) => Error::Archived {
                stream: stream.cloned(),
                position: if stream.is_some() { first } else { position },
                archive: s.archive.clone(),
            },
            None => error,
        },
        _ => error,
    }
}

/// A subscription to the embedded log. It holds one batch at most: a slow
/// consumer only falls behind and reads from disk when it catches up.
pub(crate) struct LogSubscription {
    shared: Arc<Shared>,
    next: Position,
    buffered: VecDeque<RecordedEvent>,
    head: watch::Receiver<Position>,
}

impl LogSubscription {
    pub(crate) fn new(shared: Arc<Shared>, from: Position) -> Self {
        let head = shared.head_tx.subscribe();
        Self {
            shared,
            next: from,
            buffered: VecDeque::new(),
            head,
        }
    }
}

#[async_trait]
impl SubscriptionSource for LogSubscription {
    async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(event);
            }
            if self.shared.is_closed() {
                return Err(Error::Closed);
            }
            // Mark the current head seen *before* reading, so an append
            // acknowledged after the read wakes the wait below.
            self.head.borrow_and_update();
            let batch = read_all_within(
                &self.shared,
                self.next,
                SUBSCRIPTION_BATCH,
                SUBSCRIPTION_BATCH_BYTES,
            )?;
            if let Some(last) = batch.last() {
                self.next = last.position.next();
                self.buffered.extend(batch);
                continue;
            }
            if self.head.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }
}
