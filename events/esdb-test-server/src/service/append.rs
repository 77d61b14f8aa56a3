//! The `Append` call: its options, its proposed events (checked against the
//! size limit before anything is stored) and its answer.

use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::messages::{parse_uuid, stream_name};
use crate::log::{AppendOutcome, Expected, Proposed};
use crate::proto::event_store::client::Empty;
use crate::proto::event_store::client::streams::{AppendReq, append_req, append_resp};

/// Reads the first message of an append, its options: the stream and what
/// the append expects it to be at.
pub(super) async fn read_options(
    messages: &mut Streaming<AppendReq>,
) -> Result<(String, Expected), Status> {
    use append_req::options::ExpectedStreamRevision as E;
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
    Ok((stream, expected))
}

/// Reads the rest of an append: its proposed events, all of them before
/// anything is stored, refusing the whole append past `max_append_size`.
pub(super) async fn read_proposed(
    messages: &mut Streaming<AppendReq>,
    max_append_size: usize,
) -> Result<Vec<Proposed>, Status> {
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
        if size > max_append_size {
            // Nothing of the request has been written: the whole of it is
            // checked before anything is stored.
            return Err(too_large(max_append_size));
        }
        proposed.push(Proposed {
            id: parse_uuid(m.id)?,
            event_type,
            content_type,
            custom_metadata: m.custom_metadata,
            data: m.data,
        });
    }
    Ok(proposed)
}

/// What the server answers an append over `max_append_size` bytes.
fn too_large(max_append_size: usize) -> Status {
    let mut status = Status::invalid_argument(format!(
        "Maximum Append Size of {max_append_size} Exceeded."
    ));
    status.metadata_mut().insert(
        "exception",
        "maximum-append-size-exceeded".parse().expect("ascii"),
    );
    status
}

/// The answer to an append that ended with `outcome`.
pub(super) fn result_message(outcome: AppendOutcome) -> append_resp::Result {
    match outcome {
        AppendOutcome::Written {
            current_revision,
            position,
        } => success(current_revision, position),
        AppendOutcome::WrongExpectedVersion { current, expected } => {
            wrong_expected_version(current, expected)
        }
    }
}

/// A success: the stream's revision after the append and the position of
/// its first event.
fn success(current_revision: Option<u64>, position: Option<u64>) -> append_resp::Result {
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

/// A wrong expected version, in both the current and the 20.6.0 fields.
fn wrong_expected_version(current: Option<u64>, expected: Expected) -> append_resp::Result {
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
            Expected::Revision(r) => ExpectedRevisionOption2060::ExpectedRevision2060(r),
            Expected::StreamExists => ExpectedRevisionOption2060::StreamExists2060(Empty {}),
            _ => ExpectedRevisionOption2060::Any2060(Empty {}),
        }),
        current_revision_option: Some(match current {
            Some(r) => CurrentRevisionOption::CurrentRevision(r),
            None => CurrentRevisionOption::CurrentNoStream(Empty {}),
        }),
        expected_revision_option: Some(match expected {
            Expected::Revision(r) => ExpectedRevisionOption::ExpectedRevision(r),
            Expected::Any => ExpectedRevisionOption::ExpectedAny(Empty {}),
            Expected::StreamExists => ExpectedRevisionOption::ExpectedStreamExists(Empty {}),
            Expected::NoStream => ExpectedRevisionOption::ExpectedNoStream(Empty {}),
        }),
    })
}
