//! HTTP/1 protocol implementation.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};

use crate::{header::HeaderValue, StatusCode};

mod chunked;
mod client;
mod codec;
mod decoder;
mod dispatcher;
mod encoder;
mod expect;
mod payload;
mod service;
mod timer;
mod upgrade;
mod utils;

pub use self::{
    client::{ClientCodec, ClientPayloadCodec},
    codec::Codec,
    dispatcher::Dispatcher,
    expect::ExpectHandler,
    payload::Payload,
    service::{H1Service, H1ServiceHandler},
    upgrade::UpgradeHandler,
    utils::SendResponse,
};

/// neonhub patch: the body of the responses the HTTP/1 dispatcher makes
/// itself, given their status (400 for a request that does not parse, 431
/// for a head over its limits, 408 for a head not received in time, 500 for
/// its own internal error): its `Content-Type` and bytes, or `None` to send
/// it empty as upstream does.
pub type OwnErrorBody = fn(StatusCode) -> Option<(HeaderValue, Bytes)>;

static OWN_ERROR_BODY: OnceLock<OwnErrorBody> = OnceLock::new();

/// neonhub patch: sets, once per process, the body of the responses the
/// HTTP/1 dispatcher makes itself (see [`OwnErrorBody`]). Returns `false`
/// if one was already set (it is kept).
pub fn set_own_error_body(body: OwnErrorBody) -> bool {
    OWN_ERROR_BODY.set(body).is_ok()
}

/// The body set by [`set_own_error_body`] for `status`, if any.
pub(crate) fn own_error_body(status: StatusCode) -> Option<(HeaderValue, Bytes)> {
    OWN_ERROR_BODY.get().and_then(|body| body(status))
}

#[derive(Debug)]
/// Codec message
pub enum Message<T> {
    /// HTTP message.
    Item(T),

    /// Payload chunk.
    Chunk(Option<Bytes>),
}

impl<T> From<T> for Message<T> {
    fn from(item: T) -> Self {
        Message::Item(item)
    }
}

/// Incoming request type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    None,
    Payload,
    Stream,
}

const LW: usize = 2 * 1024;
const HW: usize = 32 * 1024;

pub(crate) fn reserve_readbuf(src: &mut BytesMut) {
    let cap = src.capacity();
    if cap < LW {
        src.reserve(HW - cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    impl Message<Request> {
        pub fn message(self) -> Request {
            match self {
                Message::Item(req) => req,
                _ => panic!("error"),
            }
        }

        pub fn chunk(self) -> Bytes {
            match self {
                Message::Chunk(Some(data)) => data,
                _ => panic!("error"),
            }
        }

        pub fn eof(self) -> bool {
            match self {
                Message::Chunk(None) => true,
                Message::Chunk(Some(_)) => false,
                _ => panic!("error"),
            }
        }
    }
}
