//! [`EsdbStore`]: the [`EventStore`] trait over an EventStoreDB / KurrentDB
//! node or cluster, through the official `kurrentdb` gRPC client.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, ReadAllOptions, ReadStreamOptions, StreamPosition, SubscriptionFilter,
};

use crate::error::{Error, Result};
use crate::esdb::connection::{CallError, Connection, RuntimeOwner, SharedConnection, on_runtime};
use crate::esdb::error::map;
use crate::esdb::mapping::{
    AllFrom, DEFAULT_MAX_APPEND_SIZE, all_from, commit_of, encode_batch, is_ours, position_after,
    position_of, recorded, stream_state,
};
use crate::esdb::subscription;
use crate::ids::{Position, Revision, StreamId};
use crate::store::{
    AppendResult, Direction, EventData, EventStore, ExpectedRevision, ReadFrom, RecordedEvent,
    Subscription,
};

/// Options of an [`EsdbStore`] beyond its connection string.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EsdbOptions {
    /// The largest append request, in bytes, counted as the server counts it
    /// (data, metadata and type name of every event). Larger batches are
    /// refused before anything is sent. Default: 1 MiB, the server's
    /// default `--max-append-size`.
    pub max_append_size: usize,
    /// Worker threads of the backend's own runtime, which runs the client,
    /// every request and every subscription. Default: 2.
    pub runtime_threads: usize,
}

impl Default for EsdbOptions {
    fn default() -> Self {
        Self {
            max_append_size: DEFAULT_MAX_APPEND_SIZE,
            runtime_threads: 2,
        }
    }
}

impl EsdbOptions {
    /// Sets [`EsdbOptions::max_append_size`] (match the server's
    /// `--max-append-size` if it was changed).
    pub fn with_max_append_size(mut self, bytes: usize) -> Self {
        self.max_append_size = bytes;
        self
    }

    /// Sets [`EsdbOptions::runtime_threads`].
    pub fn with_runtime_threads(mut self, threads: usize) -> Self {
        self.runtime_threads = threads;
        self
    }
}

/// The EventStoreDB / KurrentDB backend.
///
/// Streams map one to one; [`ExpectedRevision`]s map to the client's stream
/// states; event ids are kept (so a retried append is idempotent on the
/// server); payloads are stored as they are (MessagePack) with a binary
/// content type, and our [`crate::Metadata`] as JSON custom metadata
/// (`$correlationId`, `$causationId`). A [`Position`] is twice the `$all`
/// commit position (see the mapping module): pass back only positions this
/// store returned, their `.next()`, or [`EventStore::head`].
///
/// `read_all` and `subscribe_all` see neonhub's streams only: system
/// streams and events (names starting with `$`) are filtered out on the
/// server. Reading `$all` needs a user allowed to (admins by default).
///
/// ```no_run
/// # async fn demo() -> neonhub_events::Result<()> {
/// use neonhub_events::{EsdbStore, EventStore, RunId};
///
/// let store = EsdbStore::connect("esdb://localhost:2113?tls=false")?;
/// let events = store
///     .read_stream(&RunId::new().stream(), neonhub_events::Direction::Forwards,
///                  neonhub_events::ReadFrom::Start, 100)
///     .await?;
/// assert!(events.is_empty());
/// # Ok(()) }
/// ```
pub struct EsdbStore {
    connection: SharedConnection,
    options: EsdbOptions,
    handle: tokio::runtime::Handle,
    // Dropped last: shutting the runtime down ends the client's tasks.
    _runtime: Arc<RuntimeOwner>,
}

impl fmt::Debug for EsdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection string may hold credentials: never print it.
        f.debug_struct("EsdbStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The server-side filter on `$all`: neonhub's streams, never system ones.
fn ours_filter() -> SubscriptionFilter {
    SubscriptionFilter::on_stream_name().regex("^[^$]")
}

fn call_error(e: CallError, conflict: Option<(&StreamId, ExpectedRevision)>) -> Error {
    match e {
        CallError::Client(e) => map(e, conflict),
        CallError::Ours(e) => e,
    }
}

impl EsdbStore {
    /// Connects to EventStoreDB / KurrentDB with a connection string such as
    /// `esdb://localhost:2113?tls=false` or
    /// `esdb+discover://admin:changeit@cluster.example:2113` (TLS is on
    /// unless the string says `tls=false`).
    ///
    /// Connecting is lazy: this checks the string and starts the backend's
    /// runtime; the first request opens the connection, and a node that
    /// cannot be reached then makes requests fail with a retryable
    /// [`Error::Backend`] while the client is recreated with backoff.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed connection string.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, EsdbOptions::default())
    }

    /// [`EsdbStore::connect`] with options.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed connection string.
    pub fn connect_with(url: &str, options: EsdbOptions) -> Result<Self> {
        let settings: kurrentdb::ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    Error::InvalidInput(format!("invalid EventStoreDB connection string: {e}"))
                })?;
        let runtime = Arc::new(RuntimeOwner::new(options.runtime_threads)?);
        let handle = runtime.handle();
        Ok(Self {
            connection: Arc::new(Connection::new(settings, handle.clone())),
            options,
            handle,
            _runtime: runtime,
        })
    }

    /// Reads up to `limit` events of `$all` that are ours, from `from`.
    async fn read_all_from(
        connection: &Connection,
        from: AllFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let mut out = Vec::new();
        let mut cursor = from;
        while out.len() < limit {
            let want = limit - out.len();
            // Reading "after c" starts at c itself and drops that event.
            let ask = want.saturating_add(usize::from(matches!(cursor, AllFrom::After(_))));
            let position = match cursor.commit() {
                None => StreamPosition::Start,
                Some(c) => StreamPosition::Position(kurrentdb::Position {
                    commit: c,
                    prepare: c,
                }),
            };
            let options = ReadAllOptions::default()
                .position(position)
                .forwards()
                .filter(ours_filter())
                .max_count(ask);
            let raw = connection
                .call(|client| {
                    let options = options.clone();
                    async move {
                        let mut stream = client.read_all(&options).await?;
                        let mut events = Vec::new();
                        while let Some(e) = stream.next().await? {
                            if let Some(e) = e.event.or(e.link) {
                                events.push(e);
                            }
                        }
                        Ok(events)
                    }
                })
                .await
                .map_err(|e| call_error(e, None))?;
            let got = raw.len();
            let mut last = None;
            for e in raw {
                let commit = commit_of(e.position);
                last = Some(commit);
                if cursor == AllFrom::After(commit) || !is_ours(&e) {
                    continue;
                }
                if out.len() < limit {
                    out.push(recorded(e)?);
                }
            }
            match last {
                Some(c) if got >= ask => cursor = AllFrom::After(c),
                // The server had no more.
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl EventStore for EsdbStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult> {
        let n = events.len() as u64;
        // Checked whole before anything is sent: never half-written.
        let encoded = encode_batch(events, self.options.max_append_size)?;
        let connection = self.connection.clone();
        let stream = stream.clone();
        on_runtime(&self.handle, async move {
            let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
            let written = connection
                .call(|client| {
                    let events = encoded.events.clone();
                    let options = options.clone();
                    let name = stream.as_str().to_string();
                    async move { client.append_to_stream(name, &options, events).await }
                })
                .await
                .map_err(|e| call_error(e, Some((&stream, expected))))?;
            let last = written.next_expected_version;
            let first = last + 1 - n;
            if n == 1 {
                let p = position_of(written.position.commit)?;
                return Ok(AppendResult {
                    next_expected: Revision(last),
                    first_position: p,
                    last_position: p,
                });
            }
            // The server reports one position per write; each event of a
            // batch has its own, so read them back.
            let options = ReadStreamOptions::default()
                .position(StreamPosition::Position(first))
                .forwards()
                .max_count(n as usize);
            let back = connection
                .call(|client| {
                    let options = options.clone();
                    let name = stream.as_str().to_string();
                    async move {
                        let mut read = client.read_stream(name, &options).await?;
                        let mut positions = Vec::new();
                        while let Some(e) = read.next().await? {
                            positions.push(commit_of(e.get_original_event().position));
                        }
                        Ok(positions)
                    }
                })
                .await
                .map_err(|e| match call_error(e, None) {
                    Error::Backend { message, retryable } => Error::Backend {
                        message: format!(
                            "the append was written but its positions could not be read back \
                             ({message}); appending the same events again is idempotent"
                        ),
                        retryable,
                    },
                    other => other,
                })?;
            match (back.first(), back.last()) {
                (Some(&f), Some(&l)) if back.len() as u64 == n => Ok(AppendResult {
                    next_expected: Revision(last),
                    first_position: position_of(f)?,
                    last_position: position_of(l)?,
                }),
                _ => Err(Error::Backend {
                    message: format!(
                        "the append to {stream} was written but {} of its {n} events read back",
                        back.len()
                    ),
                    retryable: false,
                }),
            }
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let position = match from {
            ReadFrom::Start => StreamPosition::Start,
            ReadFrom::End => StreamPosition::End,
            ReadFrom::Revision(r) => StreamPosition::Position(r.0),
        };
        // `position` sets a direction of its own: set ours after it.
        let options = ReadStreamOptions::default().position(position);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        }
        .max_count(limit);
        let connection = self.connection.clone();
        let name = stream.as_str().to_string();
        on_runtime(&self.handle, async move {
            let raw = connection
                .call(|client| {
                    let options = options.clone();
                    let name = name.clone();
                    async move {
                        let mut read = match client.read_stream(name, &options).await {
                            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                            other => other?,
                        };
                        let mut events = Vec::new();
                        loop {
                            match read.next().await {
                                Ok(Some(e)) => {
                                    if let Some(e) = e.event.or(e.link) {
                                        events.push(e);
                                    }
                                }
                                Ok(None) => break,
                                // A stream that does not exist reads as empty.
                                Err(kurrentdb::Error::ResourceNotFound) => break,
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(events)
                    }
                })
                .await
                .map_err(|e| call_error(e, None))?;
            raw.into_iter().map(recorded).collect()
        })
        .await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let connection = self.connection.clone();
        on_runtime(&self.handle, async move {
            EsdbStore::read_all_from(&connection, all_from(from), limit).await
        })
        .await
    }

    async fn subscribe_all(&self, from: Position) -> Result<Subscription> {
        Ok(subscription::start(
            self.connection.clone(),
            &self.handle,
            from,
        ))
    }

    async fn head(&self) -> Result<Position> {
        let connection = self.connection.clone();
        on_runtime(&self.handle, async move {
            // The last event of `$all`, system events included: nothing of
            // ours can be at or after the position just past it.
            let options = ReadAllOptions::default()
                .position(StreamPosition::End)
                .backwards()
                .max_count(1);
            let last = connection
                .call(|client| {
                    let options = options.clone();
                    async move {
                        let mut read = client.read_all(&options).await?;
                        let mut last = None;
                        while let Some(e) = read.next().await? {
                            last.get_or_insert(commit_of(e.get_original_event().position));
                        }
                        Ok(last)
                    }
                })
                .await
                .map_err(|e| call_error(e, None))?;
            match last {
                Some(c) => position_after(c),
                None => Ok(Position::START),
            }
        })
        .await
    }
}

/// Reads the first event of ours at or after `from`, for subscriptions that
/// must include the event at their start.
pub(crate) async fn first_at(
    connection: &Connection,
    commit: u64,
) -> Result<Option<RecordedEvent>> {
    Ok(EsdbStore::read_all_from(connection, AllFrom::At(commit), 1)
        .await?
        .into_iter()
        .next())
}

/// The filter subscriptions use.
pub(crate) fn subscription_filter() -> SubscriptionFilter {
    ours_filter()
}

/// Maps a failed call for subscriptions.
pub(crate) fn subscription_error(e: CallError) -> Error {
    call_error(e, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_on_unless_the_connection_string_turns_it_off() {
        let secure: kurrentdb::ClientSettings = "esdb://localhost:2113".parse().unwrap();
        assert!(secure.is_secure_mode_enabled());
        let plain: kurrentdb::ClientSettings = "esdb://localhost:2113?tls=false".parse().unwrap();
        assert!(!plain.is_secure_mode_enabled());
        match EsdbStore::connect("http://localhost:2113") {
            Err(e @ Error::InvalidInput(_)) => assert!(e.is_client_error()),
            other => panic!("a bad scheme: {other:?}"),
        }
        assert!(EsdbStore::connect("esdb://admin:changeit@localhost:2113").is_ok());
    }
}
