//! Building and parsing the gRPC messages: ids, stream names, events,
//! timestamps and filters.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;
use uuid::Uuid;

use super::DEFAULT_FILTER_WINDOW;
use crate::log::{Filter, Stored};
use crate::proto::event_store::client::streams::{ReadResp, read_req, read_resp};
use crate::proto::event_store::client::{StreamIdentifier, Uuid as ProtoUuid, uuid as puuid};

/// The current time, as checkpoints and `CaughtUp` carry it.
pub(super) fn timestamp_now() -> prost_types::Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// `id` as the client asked for event ids: a string or two 64-bit halves.
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

/// The event id of a proposed event, in either form.
pub(super) fn parse_uuid(id: Option<ProtoUuid>) -> Result<Uuid, Status> {
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

/// The stream a request names (UTF-8).
pub(super) fn stream_name(id: Option<StreamIdentifier>) -> Result<String, Status> {
    let id = id.ok_or_else(|| Status::invalid_argument("a stream identifier is required"))?;
    String::from_utf8(id.stream_name)
        .map_err(|_| Status::invalid_argument("stream names are UTF-8"))
}

/// The `ReadResp` carrying the stored event `e`.
pub(super) fn event_message(e: &Stored, uuid_as_string: bool) -> ReadResp {
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

/// A `ReadResp` with `c` as its content.
pub(super) fn content(c: read_resp::Content) -> ReadResp {
    ReadResp { content: Some(c) }
}

/// A request's server-side filter and its checkpoint interval (in events
/// looked at).
pub(super) fn build_filter(f: read_req::options::FilterOptions) -> Result<(Filter, u32), Status> {
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
