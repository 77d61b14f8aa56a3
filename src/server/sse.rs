//! `GET /v1/events?from=POSITION`: every recorded event from a position on,
//! then each new one as it is appended, as server-sent events (`id:` is the
//! position, so a client resumes with `Last-Event-ID`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use neonhub_events::{Codec, Position, RecordedEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::AppState;
use super::errors::{ApiError, ErrorBody, ErrorCode};
use super::query::{FeedParams, Query};
use crate::view::EventView;

/// Events buffered between the store's subscription and a slow client, at
/// most...
const BUFFER: usize = 256;
/// ...and at most this many bytes of them (an event larger than this is
/// let through alone): a stalled client holds a bounded amount of memory
/// whatever the size of the runs' inputs and outputs.
pub(crate) const FEED_BUFFER_BYTES: usize = 512 << 10;
/// A client that reads nothing this long while its buffer is full loses
/// its subscription: a stalled client holds none for ever. (Its buffered
/// events and its place stay until its connection closes: actix-web has no
/// write timeout to end it sooner.)
const SLOW_CLIENT: Duration = Duration::from_secs(30);
/// A comment line this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn frame(codec: &Codec, event: &RecordedEvent) -> Bytes {
    let data = serde_json::to_string(&EventView::new(codec, event)).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.position, event.event_type, data
    ))
}

/// An event waiting for its client, with the share of the client's byte
/// budget it holds.
type Buffered = (RecordedEvent, OwnedSemaphorePermit);

/// What an event costs the client's budget: its payload, metadata and
/// names, capped at the whole budget so one large event still goes through.
fn buffered_bytes(event: &RecordedEvent) -> u32 {
    let size = event.payload.len()
        + event.event_type.len()
        + event.stream.as_str().len()
        + std::mem::size_of::<RecordedEvent>();
    u32::try_from(size.min(FEED_BUFFER_BYTES)).unwrap_or(u32::MAX)
}

/// `GET /v1/events`: the feed.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    summary = "Follow the event log",
    description = "Server-sent events: every recorded event from `from` on (default: the head), \
        then each new one as it is appended, never ending. Each event is `id: <position>`, \
        `event: <type>`, `data: <the event as JSON, as in /v1/runs/{run_id}/events>`; a comment \
        line every 15 s keeps idle connections open. A client resumes with `Last-Event-ID`.",
    params(
        FeedParams,
        ("Last-Event-ID" = Option<u64>, Header,
         description = "The last event seen (a position below the head): the feed goes on after it, whatever `from` says."),
    ),
    responses(
        (status = 200, description = "The feed (it does not end).", content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad or unknown query parameter, or a `Last-Event-ID` that is not a position of this log: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 410, description = "The events from `from` were archived out of the live log; the message says where: `archived`.", body = ErrorBody<'static>),
        (status = 503, description = "As many feeds are open as the server keeps (`overloaded`, `--max-feed-clients`), draining (`shutting_down`), or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn feed(
    req: HttpRequest,
    Query(params): Query<FeedParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A browser's EventSource reconnects with the URL it was opened with
    // and `Last-Event-ID`: the header wins, or it would replay from `from`.
    let last_seen = match req.headers().get("last-event-id") {
        Some(id) => Some(
            id.to_str()
                .ok()
                .and_then(|id| id.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "not a position (a whole number)")
                })?,
        ),
        None => None,
    };
    let from = match (last_seen, params.from) {
        (Some(id), _) => {
            let head = state.store.head().await?;
            match id.checked_add(1).map(Position) {
                Some(next) if next <= head => next,
                _ => {
                    return Err(ApiError::invalid(
                        "Last-Event-ID",
                        format!(
                            "{id} is not an event of this log (its head, the position the \
                             next event gets, is {}): reconnect without it, or with \
                             ?from=POSITION",
                            head.0
                        ),
                    ));
                }
            }
        }
        (None, Some(p)) => p,
        (None, None) => state.store.head().await?,
    };
    if *state.shutdown.borrow() {
        return Err(ApiError::shutting_down());
    }
    if req.method() == actix_web::http::Method::HEAD {
        // The answer's head only: no subscription for a body never sent.
        return Ok(feed_response().finish());
    }
    // Held by the body: a feed that closes frees its place.
    let slot = Arc::clone(&state.feed_slots)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::Overloaded,
                format!(
                    "{} event feeds are open, the most this server keeps (--max-feed-clients): \
                     retry later",
                    state.max_feed_clients
                ),
            )
        })?;
    let mut subscription = state.store.subscribe_all(from).await?;
    let (tx, rx) = mpsc::channel::<Buffered>(BUFFER);
    let budget = Arc::new(Semaphore::new(FEED_BUFFER_BYTES));
    actix_web::rt::spawn(async move {
        while let Ok(event) = subscription.next().await {
            let cost = buffered_bytes(&event);
            let enqueue = async {
                let bytes = Arc::clone(&budget).acquire_many_owned(cost).await.ok()?;
                tx.send((event, bytes)).await.ok()
            };
            match tokio::time::timeout(SLOW_CLIENT, enqueue).await {
                Ok(Some(())) => {}
                // The client went away.
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        "an event feed client read nothing for {} s with its buffer full: \
                         closing its feed (it resumes with Last-Event-ID)",
                        SLOW_CLIENT.as_secs()
                    );
                    break;
                }
            }
        }
    });
    let codec = state.codec.clone();
    let shutdown = state.shutdown.clone();
    let body = stream::unfold(
        (rx, shutdown, codec, slot),
        |(mut rx, mut shutdown, codec, slot): (
            mpsc::Receiver<Buffered>,
            watch::Receiver<bool>,
            Codec,
            OwnedSemaphorePermit,
        )| async move {
            if *shutdown.borrow() {
                return None;
            }
            let item = tokio::select! {
                event = rx.recv() => match event {
                    // The bytes are given back once the frame is handed to
                    // the connection, whose own buffer actix bounds.
                    Some((event, _bytes)) => frame(&codec, &event),
                    None => return None,
                },
                _ = shutdown.wait_for(|s| *s) => return None,
                () = tokio::time::sleep(KEEP_ALIVE) => Bytes::from_static(b": keep-alive\n\n"),
            };
            Some((Ok::<_, actix_web::Error>(item), (rx, shutdown, codec, slot)))
        },
    );
    Ok(feed_response().streaming(body))
}

/// The feed's status and headers.
fn feed_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    response
}
