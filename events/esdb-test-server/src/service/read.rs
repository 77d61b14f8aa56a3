//! The `Read` call: its options, a read of a count of events of a stream or
//! of `$all`, and where a subscription starts.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::messages::{build_filter, content, event_message, stream_name};
use super::subscription::Target;
use super::{ReadItem, Shared};
use crate::log::{AllFrom, Dir, Filter, StreamFrom};
use crate::proto::event_store::client::streams::{ReadResp, read_req, read_resp};
use read_req::options::{
    AllOptions, CountOption, FilterOption, StreamOption, StreamOptions, all_options::AllOption,
    stream_options::RevisionOption, uuid_option,
};

/// A read request's options, checked.
pub(super) struct ReadRequest {
    pub(super) dir: Dir,
    pub(super) uuid_as_string: bool,
    pub(super) filter: Option<(Filter, u32)>,
    /// What to read: a stream or `$all`.
    pub(super) stream_option: StreamOption,
    /// How much: a count, or a subscription.
    pub(super) count_option: Option<CountOption>,
}

impl ReadRequest {
    /// Checks `options`: the direction, how event ids are sent, the filter
    /// and what to read.
    pub(super) fn parse(options: read_req::Options) -> Result<Self, Status> {
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
        Ok(Self {
            dir,
            uuid_as_string,
            filter,
            stream_option,
            count_option: options.count_option,
        })
    }

    /// The messages answering a read of up to `count` events.
    pub(super) fn messages(self, shared: &Shared, count: u64) -> Result<Vec<ReadResp>, Status> {
        match self.stream_option {
            StreamOption::Stream(s) => {
                stream_messages(shared, s, self.dir, count, self.uuid_as_string)
            }
            StreamOption::All(a) => Ok(all_messages(
                shared,
                a,
                self.dir,
                count,
                self.filter.as_ref().map(|(f, _)| f),
                self.uuid_as_string,
            )),
        }
    }
}

/// Up to `count` events of a stream, or "stream not found".
fn stream_messages(
    shared: &Shared,
    s: StreamOptions,
    dir: Dir,
    count: u64,
    uuid_as_string: bool,
) -> Result<Vec<ReadResp>, Status> {
    let name = stream_name(s.stream_identifier.clone())?;
    let from = match s.revision_option {
        Some(RevisionOption::Revision(r)) => StreamFrom::Revision(r),
        Some(RevisionOption::End(_)) => StreamFrom::End,
        _ => StreamFrom::Start,
    };
    Ok(match shared.log().read_stream(&name, dir, from, count) {
        Some(events) => events
            .iter()
            .map(|e| event_message(e, uuid_as_string))
            .collect(),
        None => vec![content(read_resp::Content::StreamNotFound(
            read_resp::StreamNotFound {
                stream_identifier: s.stream_identifier,
            },
        ))],
    })
}

/// Up to `count` events of `$all` that `filter` allows.
fn all_messages(
    shared: &Shared,
    a: AllOptions,
    dir: Dir,
    count: u64,
    filter: Option<&Filter>,
    uuid_as_string: bool,
) -> Vec<ReadResp> {
    let from = match a.all_option {
        Some(AllOption::Position(p)) => AllFrom::Position(p.commit_position, p.prepare_position),
        Some(AllOption::End(_)) => AllFrom::End,
        _ => AllFrom::Start,
    };
    shared
        .log()
        .read_all(dir, from, count, filter)
        .iter()
        .map(|e| event_message(e, uuid_as_string))
        .collect()
}

/// A response stream that sends `messages`, then ends.
pub(super) fn send_all(messages: Vec<ReadResp>) -> ReceiverStream<ReadItem> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        for m in messages {
            if tx.send(Ok(m)).await.is_err() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// What a subscription follows, and the index of `$all` it starts looking
/// at.
pub(super) fn subscription_start(
    shared: &Shared,
    stream_option: StreamOption,
    filter: Option<(Filter, u32)>,
) -> Result<(Target, usize), Status> {
    let log_len = shared.log().len();
    Ok(match stream_option {
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
                Some(RevisionOption::End(_)) => (Target::Stream { name, after: None }, log_len),
                _ => (Target::Stream { name, after: None }, 0),
            }
        }
        StreamOption::All(a) => {
            let cursor = match a.all_option {
                // Subscribing from a position starts after it.
                Some(AllOption::Position(p)) => shared
                    .log()
                    .index_at_or_after(p.commit_position.saturating_add(1)),
                Some(AllOption::End(_)) => log_len,
                _ => 0,
            };
            (Target::All { filter }, cursor)
        }
    })
}
