//! The gRPC `event_store.client.streams.Streams` service over the in-memory
//! [`Log`]: append, read a stream, read `$all`, and subscriptions to a stream
//! or to `$all` (catch-up, then live, with filters and checkpoints).

// `tonic::Status` is what every handler returns; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::log::{
    AllFrom, AppendOutcome, Dir, Expected, Filter, Log, Proposed, Stored, StreamFrom,
};
use crate::proto::event_store::client::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
    ReadResp, TombstoneReq, TombstoneResp, append_req, append_resp, read_req, read_resp,
    streams_server::Streams,
};
use crate::proto::event_store::client::{
    Empty, StreamIdentifier, Uuid as ProtoUuid, uuid as puuid,
};

/// How many events a subscription hands to the gRPC stream before it looks
/// at the log again; also bounds what one subscriber holds in memory.
const SUBSCRIPTION_BATCH: usize = 128;
/// The filter window EventStoreDB uses when a request names none.
const DEFAULT_FILTER_WINDOW: u32 = 32;

/// Failures a test can switch on, to see how a client copes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    /// Answer every append and read as a follower would: "not leader",
    /// naming this leader.
    pub(crate) not_leader: Option<(String, u16)>,
    /// Wait this long before handling an append.
    pub(crate) append_delay: Duration,
}

/// The state every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) log: Mutex<Log>,
    /// Bumped after every write, to wake live subscriptions.
    pub(crate) appended: watch::Sender<u64>,
    pub(crate) faults: Mutex<Faults>,
    /// Bumped to end every live subscription with `UNAVAILABLE`.
    pub(crate) cut: watch::Sender<u64>,
    pub(crate) max_append_size: usize,
}

impl Shared {
    pub(crate) fn new(max_append_size: usize) -> Self {
        Self {
            log: Mutex::new(Log::default()),
            appended: watch::channel(0).0,
            faults: Mutex::new(Faults::default()),
            cut: watch::channel(0).0,
            max_append_size,
        }
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends and wakes subscribers.
    pub(crate) fn append(
        &self,
        stream: &str,
        expected: Expected,
        proposed: Vec<Proposed>,
    ) -> AppendOutcome {
        let outcome = self.log().append(stream, expected, proposed);
        self.appended.send_modify(|n| *n += 1);
        outcome
    }

    fn not_leader(&self) -> Result<(), Status> {
        match &self.faults().not_leader {
            None => Ok(()),
            Some((host, port)) => {
                // What EventStoreDB's followers answer (RpcExceptions.LeaderInfo).
                let mut status = Status::not_found("Leader info available");
                let md = status.metadata_mut();
                md.insert("exception", "not-leader".parse().expect("ascii"));
                md.insert(
                    "leader-endpoint-host",
                    host.parse().map_err(|_| Status::internal("bad host"))?,
                );
                md.insert(
                    "leader-endpoint-port",
                    port.to_string().parse().expect("digits"),
                );
                Err(status)
            }
        }
    }
}

/// The service handed to tonic.
#[derive(Debug, Clone)]
pub(crate) struct StreamsService {
    pub(crate) shared: Arc<Shared>,
}

type ReadItem = Result<ReadResp, Status>;

fn timestamp_now() -> prost_types::Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn proto_uuid(id: Uuid, as_string: bool) -> ProtoUuid {
    let value = if as_string {
        puuid::Value::String(id.to_string())
    } else {
        let n = id.as_u128();
        puuid::Value::Structured(puuid::Structured {
            most_significant_bits: (n >> 64) as u64 as i64,
            least_significant_bits: n as u64 as i64,
        })
    };
    ProtoUuid { value: Some(value) }
}

fn parse_uuid(id: Option<ProtoUuid>) -> Result<Uuid, Status> {
    match id.and_then(|u| u.value) {
        Some(puuid::Value::Structured(s)) => Ok(Uuid::from_u128(
            (u128::from(s.most_significant_bits as u64) << 64)
                | u128::from(s.least_significant_bits as u64),
        )),
        Some(puuid::Value::String(s)) => {
            Uuid::parse_str(&s).map_err(|e| Status::invalid_argument(format!("bad event id: {e}")))
        }
        None => Err(Status::invalid_argument("an event id is required")),
    }
}

fn stream_name(id: Option<StreamIdentifier>) -> Result<String, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument("a stream identifier is required"))?;
    String::from_utf8(id.stream_name)
        .map_err(|_| Status::invalid_argument("stream names are UTF-8"))
}

fn event_message(e: &Stored, uuid_as_string: bool) -> ReadResp {
    let metadata = [
        ("type", e.event_type.clone()),
        ("content-type", e.content_type.clone()),
        ("created", e.created.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let recorded = read_resp::read_event::RecordedEvent {
        id: Some(proto_uuid(e.id, uuid_as_string)),
        stream_identifier: Some(StreamIdentifier {
            stream_name: e.stream.clone().into_bytes(),
        }),
        stream_revision: e.revision,
        prepare_position: e.position,
        commit_position: e.position,
        metadata,
        custom_metadata: e.custom_metadata.clone(),
        data: e.data.clone(),
    };
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: Some(recorded),
            link: None,
            position: Some(read_resp::read_event::Position::CommitPosition(e.position)),
        })),
    }
}

fn content(c: read_resp::Content) -> ReadResp {
    ReadResp { content: Some(c) }
}

fn build_filter(f: read_req::options::FilterOptions) -> Result<(Filter, u32), Status> {
    use read_req::options::filter_options::{Filter as F, Window};
    let (on_stream, expr) = match f.filter {
        Some(F::StreamIdentifier(e)) => (true, e),
        Some(F::EventType(e)) => (false, e),
        None => return Err(Status::invalid_argument("a filter needs an expression")),
    };
    let filter =
        Filter::new(on_stream, &expr.regex, expr.prefix).map_err(Status::invalid_argument)?;
    let window = match f.window {
        Some(Window::Max(m)) if m > 0 => m,
        _ => DEFAULT_FILTER_WINDOW,
    };
    let interval = window.saturating_mul(f.checkpoint_interval_multiplier.max(1));
    Ok((filter, interval))
}

/// What a subscription follows.
enum Target {
    Stream { name: String, after: Option<u64> },
    All { filter: Option<(Filter, u32)> },
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReceiverStream<ReadItem>;
    type BatchAppendStream = ReceiverStream<Result<BatchAppendResp, Status>>;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        use read_req::options::{
            CountOption, FilterOption, StreamOption, all_options::AllOption,
            stream_options::RevisionOption, uuid_option,
        };
        self.shared.not_leader()?;
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("read options are required"))?;
        let dir = if options.read_direction == read_req::options::ReadDirection::Backwards as i32 {
            Dir::Backwards
        } else {
            Dir::Forwards
        };
        let uuid_as_string = matches!(
            options.uuid_option.and_then(|u| u.content),
            Some(uuid_option::Content::String(_))
        );
        let filter = match options.filter_option {
            Some(FilterOption::Filter(f)) => Some(build_filter(f)?),
            _ => None,
        };
        let stream_option = options
            .stream_option
            .ok_or_else(|| Status::invalid_argument("read what: a stream or $all"))?;
        match options.count_option {
            Some(CountOption::Count(count)) => {
                let messages: Vec<ReadResp> = match stream_option {
                    StreamOption::Stream(s) => {
                        let name = stream_name(s.stream_identifier.clone())?;
                        let from = match s.revision_option {
                            Some(RevisionOption::Revision(r)) => StreamFrom::Revision(r),
                            Some(RevisionOption::End(_)) => StreamFrom::End,
                            _ => StreamFrom::Start,
                        };
                        match self.shared.log().read_stream(&name, dir, from, count) {
                            Some(events) => events
                                .iter()
                                .map(|e| event_message(e, uuid_as_string))
                                .collect(),
                            None => vec![content(read_resp::Content::StreamNotFound(
                                read_resp::StreamNotFound {
                                    stream_identifier: s.stream_identifier,
                                },
                            ))],
                        }
                    }
                    StreamOption::All(a) => {
                        let from = match a.all_option {
                            Some(AllOption::Position(p)) => {
                                AllFrom::Position(p.commit_position, p.prepare_position)
                            }
                            Some(AllOption::End(_)) => AllFrom::End,
                            _ => AllFrom::Start,
                        };
                        self.shared
                            .log()
                            .read_all(dir, from, count, filter.as_ref().map(|(f, _)| f))
                            .iter()
                            .map(|e| event_message(e, uuid_as_string))
                            .collect()
                    }
                };
                let (tx, rx) = mpsc::channel(64);
                tokio::spawn(async move {
                    for m in messages {
                        if tx.send(Ok(m)).await.is_err() {
                            break;
                        }
                    }
                });
                Ok(Response::new(ReceiverStream::new(rx)))
            }
            Some(CountOption::Subscription(_)) => {
                if dir == Dir::Backwards {
                    return Err(Status::invalid_argument("subscriptions only go forwards"));
                }
                let log_len = self.shared.log().len();
                let (target, cursor) = match stream_option {
                    StreamOption::Stream(s) => {
                        let name = stream_name(s.stream_identifier)?;
                        match s.revision_option {
                            Some(RevisionOption::Revision(r)) => (
                                Target::Stream {
                                    name,
                                    after: Some(r),
                                },
                                0,
                            ),
                            Some(RevisionOption::End(_)) => {
                                (Target::Stream { name, after: None }, log_len)
                            }
                            _ => (Target::Stream { name, after: None }, 0),
                        }
                    }
                    StreamOption::All(a) => {
                        let cursor = match a.all_option {
                            // Subscribing from a position starts after it.
                            Some(AllOption::Position(p)) => self
                                .shared
                                .log()
                                .index_at_or_after(p.commit_position.saturating_add(1)),
                            Some(AllOption::End(_)) => log_len,
                            _ => 0,
                        };
                        (Target::All { filter }, cursor)
                    }
                };
                let (tx, rx) = mpsc::channel(SUBSCRIPTION_BATCH);
                let shared = self.shared.clone();
                tokio::spawn(subscription(shared, target, cursor, uuid_as_string, tx));
                Ok(Response::new(ReceiverStream::new(rx)))
            }
            None => Err(Status::invalid_argument(
                "a count or a subscription is required",
            )),
        }
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        use append_req::options::ExpectedStreamRevision as E;
        self.shared.not_leader()?;
        let delay = self.shared.faults().append_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut messages = request.into_inner();
        let header = match messages.next().await {
            Some(Ok(AppendReq {
                content: Some(append_req::Content::Options(o)),
            })) => o,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Status::invalid_argument(
                    "an append starts with its options",
                ));
            }
        };
        let stream = stream_name(header.stream_identifier)?;
        let expected = match header.expected_stream_revision {
            Some(E::Revision(r)) => Expected::Revision(r),
            Some(E::NoStream(_)) => Expected::NoStream,
            Some(E::StreamExists(_)) => Expected::StreamExists,
            Some(E::Any(_)) | None => Expected::Any,
        };
        let mut proposed = Vec::new();
        let mut size = 0usize;
        while let Some(message) = messages.next().await {
            let Some(append_req::Content::ProposedMessage(mut m)) = message?.content else {
                return Err(Status::invalid_argument("options sent twice"));
            };
            let event_type = m.metadata.remove("type").ok_or_else(|| {
                Status::invalid_argument("Required metadata property 'type' is missing")
            })?;
            let content_type = m.metadata.remove("content-type").ok_or_else(|| {
                Status::invalid_argument("Required metadata property 'content-type' is missing")
            })?;
            size += m.data.len() + m.custom_metadata.len() + event_type.len();
            if size > self.shared.max_append_size {
                // Nothing of the request has been written: the whole of it is
                // checked before anything is stored.
                let mut status = Status::invalid_argument(format!(
                    "Maximum Append Size of {} Exceeded.",
                    self.shared.max_append_size
                ));
                status.metadata_mut().insert(
                    "exception",
                    "maximum-append-size-exceeded".parse().expect("ascii"),
                );
                return Err(status);
            }
            proposed.push(Proposed {
                id: parse_uuid(m.id)?,
                event_type,
                content_type,
                custom_metadata: m.custom_metadata,
                data: m.data,
            });
        }
        let result = match self.shared.append(&stream, expected, proposed) {
            AppendOutcome::Written {
                current_revision,
                position,
            } => {
                use append_resp::success::{CurrentRevisionOption, PositionOption};
                append_resp::Result::Success(append_resp::Success {
                    current_revision_option: Some(match current_revision {
                        Some(r) => CurrentRevisionOption::CurrentRevision(r),
                        None => CurrentRevisionOption::NoStream(Empty {}),
                    }),
                    position_option: Some(match position {
                        Some(p) => PositionOption::Position(append_resp::Position {
                            commit_position: p,
                            prepare_position: p,
                        }),
                        None => PositionOption::NoPosition(Empty {}),
                    }),
                })
            }
            AppendOutcome::WrongExpectedVersion { current, expected } => {
                use append_resp::wrong_expected_version::{
                    CurrentRevisionOption, CurrentRevisionOption2060, ExpectedRevisionOption,
                    ExpectedRevisionOption2060,
                };
                append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                    current_revision_option_20_6_0: Some(match current {
                        Some(r) => CurrentRevisionOption2060::CurrentRevision2060(r),
                        None => CurrentRevisionOption2060::NoStream2060(Empty {}),
                    }),
                    expected_revision_option_20_6_0: Some(match expected {
                        Expected::Revision(r) => {
                            ExpectedRevisionOption2060::ExpectedRevision2060(r)
                        }
                        Expected::StreamExists => {
                            ExpectedRevisionOption2060::StreamExists2060(Empty {})
                        }
                        _ => ExpectedRevisionOption2060::Any2060(Empty {}),
                    }),
                    current_revision_option: Some(match current {
                        Some(r) => CurrentRevisionOption::CurrentRevision(r),
                        None => CurrentRevisionOption::CurrentNoStream(Empty {}),
                    }),
                    expected_revision_option: Some(match expected {
                        Expected::Revision(r) => ExpectedRevisionOption::ExpectedRevision(r),
                        Expected::Any => ExpectedRevisionOption::ExpectedAny(Empty {}),
                        Expected::StreamExists => {
                            ExpectedRevisionOption::ExpectedStreamExists(Empty {})
                        }
                        Expected::NoStream => ExpectedRevisionOption::ExpectedNoStream(Empty {}),
                    }),
                })
            }
        };
        Ok(Response::new(AppendResp {
            result: Some(result),
        }))
    }

    async fn delete(&self, _: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        Err(Status::unimplemented(
            "stream deletion is not part of the neonhub test server",
        ))
    }

    async fn tombstone(&self, _: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        Err(Status::unimplemented(
            "tombstones are not part of the neonhub test server",
        ))
    }

    async fn batch_append(
        &self,
        _: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Err(Status::unimplemented(
            "batch append is not part of the neonhub test server; use Append",
        ))
    }
}

/// Feeds one subscription: a confirmation, every stored event it follows
/// from `cursor` on, `CaughtUp`, then each new event, until the client goes.
/// A filtered `$all` subscription also gets checkpoints.
async fn subscription(
    shared: Arc<Shared>,
    target: Target,
    mut cursor: usize,
    uuid_as_string: bool,
    tx: mpsc::Sender<ReadItem>,
) {
    let mut appended = shared.appended.subscribe();
    let mut cut = shared.cut.subscribe();
    let confirmation = content(read_resp::Content::Confirmation(
        read_resp::SubscriptionConfirmation {
            subscription_id: Uuid::new_v4().to_string(),
        },
    ));
    if tx.send(Ok(confirmation)).await.is_err() {
        return;
    }
    let mut caught_up = false;
    let mut since_checkpoint = 0u32;
    loop {
        appended.borrow_and_update();
        let mut batch = Vec::new();
        let mut checkpoint = None;
        let at_end = {
            let log = shared.log();
            while batch.len() < SUBSCRIPTION_BATCH {
                let Some(e) = log.get(cursor) else { break };
                cursor += 1;
                let wanted = match &target {
                    Target::Stream { name, after } => {
                        e.stream == *name && after.is_none_or(|a| e.revision > a)
                    }
                    Target::All { filter } => {
                        if let Some((filter, interval)) = filter {
                            since_checkpoint += 1;
                            if since_checkpoint >= *interval {
                                since_checkpoint = 0;
                                checkpoint = Some(e.position);
                            }
                            filter.allows(e)
                        } else {
                            true
                        }
                    }
                };
                if wanted {
                    batch.push(event_message(e, uuid_as_string));
                }
                if checkpoint.is_some() {
                    break;
                }
            }
            cursor == log.len()
        };
        for m in batch {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        if let Some(p) = checkpoint {
            let c = read_resp::Checkpoint {
                commit_position: p,
                prepare_position: p,
                timestamp: Some(timestamp_now()),
            };
            if tx
                .send(Ok(content(read_resp::Content::Checkpoint(c))))
                .await
                .is_err()
            {
                return;
            }
        }
        if !at_end {
            continue;
        }
        if !caught_up {
            caught_up = true;
            let position = shared.log().last_position().map(|p| read_resp::Position {
                commit_position: p,
                prepare_position: p,
            });
            let msg = read_resp::CaughtUp {
                timestamp: Some(timestamp_now()),
                stream_revision: None,
                position,
            };
            if tx
                .send(Ok(content(read_resp::Content::CaughtUp(msg))))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            _ = cut.changed() => {
                // What a node that steps down or shuts down does to its
                // subscriptions.
                let _ = tx.send(Err(Status::unavailable("the subscription was dropped"))).await;
                return;
            }
        }
    }
}
