//! The gRPC `event_store.client.streams.Streams` service over the in-memory
//! [`Log`]: append, read a stream, read `$all`, and subscriptions to a stream
//! or to `$all` (catch-up, then live, with filters and checkpoints).
//!
//! This file holds the shared state and the service's entry points; the work
//! of each call is in its own module: `read`, `append` and `subscription`,
//! with the gRPC messages they build and parse in `messages`.

// `tonic::Status` is what every handler returns; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod append;
mod messages;
mod read;
mod subscription;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::log::{AppendOutcome, Dir, Expected, Log, Proposed};
use crate::proto::event_store::client::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
    ReadResp, TombstoneReq, TombstoneResp, read_req, streams_server::Streams,
};
use read::ReadRequest;
use subscription::subscription;

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

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReceiverStream<ReadItem>;
    type BatchAppendStream = ReceiverStream<Result<BatchAppendResp, Status>>;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        use read_req::options::CountOption;
        self.shared.not_leader()?;
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("read options are required"))?;
        let request = ReadRequest::parse(options)?;
        match request.count_option {
            Some(CountOption::Count(count)) => {
                let messages = request.messages(&self.shared, count)?;
                Ok(Response::new(read::send_all(messages)))
            }
            Some(CountOption::Subscription(_)) => {
                if request.dir == Dir::Backwards {
                    return Err(Status::invalid_argument("subscriptions only go forwards"));
                }
                let (target, cursor) =
                    read::subscription_start(&self.shared, request.stream_option, request.filter)?;
                let (tx, rx) = mpsc::channel(SUBSCRIPTION_BATCH);
                let shared = self.shared.clone();
                tokio::spawn(subscription(
                    shared,
                    target,
                    cursor,
                    request.uuid_as_string,
                    tx,
                ));
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
        self.shared.not_leader()?;
        let delay = self.shared.faults().append_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut messages = request.into_inner();
        let (stream, expected) = append::read_options(&mut messages).await?;
        let proposed = append::read_proposed(&mut messages, self.shared.max_append_size).await?;
        let outcome = self.shared.append(&stream, expected, proposed);
        Ok(Response::new(AppendResp {
            result: Some(append::result_message(outcome)),
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
