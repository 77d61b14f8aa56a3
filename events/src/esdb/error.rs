//! The client's errors as this crate's typed [`Error`]s, and which of them
//! mean the client itself is dead and must be recreated.

use crate::error::Error;
use crate::ids::{Revision, StreamId};
use crate::store::ExpectedRevision;

/// Whether this error leaves the client unusable: its connection task has
/// stopped (a first connection that failed, or a reconnection that did), so
/// every later call would fail the same way.
pub(crate) fn client_is_dead(e: &kurrentdb::Error) -> bool {
    matches!(
        e,
        kurrentdb::Error::ConnectionClosed
            | kurrentdb::Error::GrpcConnectionError(_)
            | kurrentdb::Error::InitializationError(_)
    )
}

/// Maps a client error; `conflict` gives the stream and expectation of an
/// append so a wrong expected version can name them.
pub(crate) fn map(e: kurrentdb::Error, conflict: Option<(&StreamId, ExpectedRevision)>) -> Error {
    use kurrentdb::Error as E;
    let backend = |message: String, retryable: bool| Error::Backend { message, retryable };
    match e {
        E::WrongExpectedVersion { current, .. } => match conflict {
            Some((stream, expected)) => Error::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: match current {
                    kurrentdb::CurrentRevision::Current(r) => Some(Revision(r)),
                    kurrentdb::CurrentRevision::NoStream => None,
                },
            },
            None => backend("unexpected wrong-expected-version answer".into(), false),
        },
        E::NotLeaderException(leader) => backend(
            format!(
                "the EventStoreDB node is not the leader (the leader is {}:{}); the client \
                 reconnects to it: retry",
                leader.host, leader.port
            ),
            true,
        ),
        E::DeadlineExceeded => backend(
            "EventStoreDB did not answer before the deadline; an append may or may not have \
             been written: retrying it with the same event ids is safe"
                .into(),
            true,
        ),
        E::ServerError(message) => backend(
            format!("EventStoreDB is unavailable or failed: {message}"),
            true,
        ),
        E::ConnectionClosed | E::GrpcConnectionError(_) => backend(
            format!("cannot reach EventStoreDB ({e}); reconnecting with backoff"),
            true,
        ),
        E::InitializationError(message) => backend(
            format!("cannot set up the EventStoreDB client: {message}"),
            true,
        ),
        E::AccessDenied => backend(
            "access denied by EventStoreDB: the user in the connection string needs to read \
             and write neonhub's streams and to read $all (admins can by default)"
                .into(),
            false,
        ),
        E::ResourceDeleted => backend("the stream was deleted in EventStoreDB".into(), false),
        E::Grpc { code, message } => match i32::from(code) {
            grpc_code::INVALID_ARGUMENT => {
                Error::InvalidInput(format!("EventStoreDB refused the request: {message}"))
            }
            grpc_code::CANCELLED | grpc_code::RESOURCE_EXHAUSTED | grpc_code::ABORTED => {
                backend(format!("EventStoreDB: {message} ({code:?})"), true)
            }
            _ => backend(format!("EventStoreDB: {message} ({code:?})"), false),
        },
        other => backend(format!("EventStoreDB: {other}"), false),
    }
}

/// The gRPC status codes we tell apart (numbers fixed by the gRPC spec).
mod grpc_code {
    pub(super) const CANCELLED: i32 = 1;
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const ABORTED: i32 = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_timeouts_and_leader_changes_map_to_what_callers_act_on() {
        let s = StreamId::new("run-x").unwrap();
        let wev = kurrentdb::Error::WrongExpectedVersion {
            expected: kurrentdb::StreamState::NoStream,
            current: kurrentdb::CurrentRevision::Current(4),
        };
        match map(wev, Some((&s, ExpectedRevision::NoStream))) {
            Error::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => {
                assert_eq!(stream, s);
                assert_eq!(expected, ExpectedRevision::NoStream);
                assert_eq!(actual, Some(Revision(4)));
            }
            other => panic!("{other}"),
        }
        for (e, retryable) in [
            (kurrentdb::Error::DeadlineExceeded, true),
            (kurrentdb::Error::ServerError("unavailable".into()), true),
            (kurrentdb::Error::ConnectionClosed, true),
            (kurrentdb::Error::AccessDenied, false),
        ] {
            match map(e, None) {
                Error::Backend { retryable: r, .. } => assert_eq!(r, retryable),
                other => panic!("{other}"),
            }
        }
        assert!(client_is_dead(&kurrentdb::Error::ConnectionClosed));
        assert!(!client_is_dead(&kurrentdb::Error::DeadlineExceeded));
    }
}
