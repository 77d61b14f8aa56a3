//! API errors: a stable code (which fixes the status) and a message,
//! answered as `{"error": {"code", "message"}}`. A client's mistake is
//! always a 4xx; messages never carry secrets.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use neonhub_events::RunStatus;
use serde::Serialize;

/// The stable `code` of an error body; each has one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    /// 400: a malformed body, field or parameter.
    InvalidRequest,
    /// 401: a missing or wrong bearer token.
    Unauthorized,
    /// 404: no such route.
    NotFound,
    /// 404: no such run.
    UnknownRun,
    /// 404: the run has no step with this key.
    UnknownStep,
    /// 404: no such agent.
    UnknownAgent,
    /// 404: no agent takes the intent.
    UnknownIntent,
    /// 405: the path exists, the method does not (`Allow` lists those it
    /// takes).
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 409: the stream moved on under a write.
    Conflict,
    /// 409: the run id's run is still going (on another node).
    RunInProgress,
    /// 409: the run id was used for another request (agent or input).
    RunIdConflict,
    /// 409: the run already ended.
    RunFinished,
    /// 409: the step did not end in doubt (nothing to resolve).
    StepNotInDoubt,
    /// 409: the run has no attempt running on this node (a step call).
    RunNotRunning,
    /// 409: the caller's attempt is over (a step call).
    AttemptOver,
    /// 404: no such connector (a step call).
    UnknownConnector,
    /// 502: the step ran (or replayed) and failed; `kind` and `retryable`
    /// say how.
    StepFailed,
    /// 410: the events asked for were archived out of the live log; the
    /// message says where.
    Archived,
    /// 413: a body or event over the limit.
    TooLarge,
    /// 414: a request target (path and query) over the limit.
    UriTooLong,
    /// 415: a body that is not JSON.
    UnsupportedMediaType,
    /// 431: too many request headers, or too many bytes of them.
    HeadersTooLarge,
    /// 500: a bug or a broken store.
    Internal,
    /// 503: too many runs in flight.
    Overloaded,
    /// 503: the service is draining.
    ShuttingDown,
    /// 503: the store is unreachable for now.
    Unavailable,
    /// 503: the projection runner has stopped.
    ProjectionStopped,
}

impl ErrorCode {
    /// The status answered with this code.
    pub(crate) fn status(self) -> StatusCode {
        use ErrorCode as C;
        match self {
            C::InvalidRequest => StatusCode::BAD_REQUEST,
            C::Unauthorized => StatusCode::UNAUTHORIZED,
            C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            C::NotFound | C::UnknownRun | C::UnknownStep | C::UnknownAgent | C::UnknownIntent => {
                StatusCode::NOT_FOUND
            }
            C::Conflict
            | C::RunInProgress
            | C::RunIdConflict
            | C::RunFinished
            | C::StepNotInDoubt
            | C::RunNotRunning
            | C::AttemptOver => StatusCode::CONFLICT,
            C::UnknownConnector => StatusCode::NOT_FOUND,
            C::StepFailed => StatusCode::BAD_GATEWAY,
            C::Archived => StatusCode::GONE,
            C::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            C::UriTooLong => StatusCode::URI_TOO_LONG,
            C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            C::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            C::Overloaded | C::ShuttingDown | C::Unavailable | C::ProjectionStopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The code as it appears in the body (`invalid_request`, ...).
    pub(crate) fn as_str(self) -> &'static str {
        use ErrorCode as C;
        match self {
            C::InvalidRequest => "invalid_request",
            C::Unauthorized => "unauthorized",
            C::RequestTimeout => "request_timeout",
            C::NotFound => "not_found",
            C::UnknownRun => "unknown_run",
            C::UnknownStep => "unknown_step",
            C::UnknownAgent => "unknown_agent",
            C::UnknownIntent => "unknown_intent",
            C::MethodNotAllowed => "method_not_allowed",
            C::Conflict => "conflict",
            C::RunInProgress => "run_in_progress",
            C::RunIdConflict => "run_id_conflict",
            C::RunFinished => "run_finished",
            C::StepNotInDoubt => "step_not_in_doubt",
            C::RunNotRunning => "run_not_running",
            C::AttemptOver => "attempt_over",
            C::UnknownConnector => "unknown_connector",
            C::StepFailed => "step_failed",
            C::Archived => "archived",
            C::TooLarge => "too_large",
            C::UriTooLong => "uri_too_long",
            C::UnsupportedMediaType => "unsupported_media_type",
            C::HeadersTooLarge => "headers_too_large",
            C::Internal => "internal",
            C::Overloaded => "overloaded",
            C::ShuttingDown => "shutting_down",
            C::Unavailable => "unavailable",
            C::ProjectionStopped => "projection_stopped",
        }
    }
}

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    /// Where the run or step stands, for a 409 about its state.
    status: Option<RunStatus>,
    /// A failed step's error kind and whether trying again may help.
    step: Option<(String, bool)>,
}

/// The body of an error answer: `{"error": {"code", "message",
/// "status"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail<'a> {
    /// What went wrong, for programs; it fixes the status.
    code: ErrorCode,
    /// What went wrong, for people.
    message: &'a str,
    /// Where the run or step stands, for a 409 about its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::openapi::RunStatusName>)]
    status: Option<RunStatus>,
    /// A failed step's error kind (`connector`, `in_doubt`, `timeout`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    /// Whether a failed step may succeed if tried again (by a retry of the
    /// attempt: a finished step replays its recorded outcome).
    #[serde(skip_serializing_if = "Option::is_none")]
    retryable: Option<bool>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: None,
            step: None,
        }
    }

    /// 502: step failure, of `kind`, retryable or not.
    pub(crate) fn step_failed(message: impl Into<String>, kind: String, retryable: bool) -> Self {
        Self {
            step: Some((kind, retryable)),
            ..Self::new(ErrorCode::StepFailed, message)
        }
    }

    /// The same error, saying where the run or step stands.
    pub(crate) fn with_status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// 400: a field (or the body) is malformed; the message names it.
    pub(crate) fn invalid(field: &str, message: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("{field}: {message}"))
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 413: a body over `limit` bytes.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::TooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub(crate) fn shutting_down() -> Self {
        Self::new(
            ErrorCode::ShuttingDown,
            "the service is shutting down; retry on another node or after it restarts",
        )
    }

    pub(crate) fn internal(message: impl fmt::Display) -> Self {
        tracing::error!("internal error: {message}");
        Self::new(ErrorCode::Internal, message.to_string())
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code.as_str()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.status().as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

/// The body of a response actix-http's HTTP/1 layer makes itself, before
/// any route sees the request (set by `super::Server::start` through the
/// patched actix-http's `set_own_error_body`; upstream sends these empty):
/// the same `{"error": {"code", "message"}}` as every other error.
pub(crate) fn http_layer_error_body(status: StatusCode) -> Option<(HeaderValue, bytes::Bytes)> {
    use super::auth::{MAX_HEADER_BYTES, MAX_HEADERS};
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => (
            ErrorCode::InvalidRequest,
            "the request is not valid HTTP/1.1 (a malformed request line or header, a \
             Content-Length that is not a number, a head too long): nothing was done; fix the \
             request and send it again"
                .to_owned(),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head is over what the server reads: nothing was done; send at \
                 most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all"
            ),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::RequestTimeout,
            "the request head did not arrive in time: nothing was done; send the whole head \
             at once, then the body"
                .to_owned(),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => (
            ErrorCode::Internal,
            "the server could not read the request: nothing was done; send it again".to_owned(),
        ),
        _ => return None,
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code,
            message: &message,
            status: None,
            kind: None,
            retryable: None,
        },
    })
    .ok()?;
    Some((
        HeaderValue::from_static("application/json"),
        bytes::Bytes::from(body),
    ))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                status: self.status,
                kind: self.step.as_ref().map(|(kind, _)| kind.as_str()),
                retryable: self.step.as_ref().map(|(_, retryable)| *retryable),
            },
        })
    }
}

impl From<neonhub_events::Error> for ApiError {
    fn from(e: neonhub_events::Error) -> Self {
        use neonhub_events::Error as E;
        let code = match &e {
            E::EventTooLarge { .. } => ErrorCode::TooLarge,
            E::InvalidStreamId { .. } | E::InvalidInput(_) => ErrorCode::InvalidRequest,
            E::WrongExpectedVersion { .. } => ErrorCode::Conflict,
            E::Archived { .. } => ErrorCode::Archived,
            E::Closed => return Self::shutting_down(),
            E::Backend {
                retryable: true, ..
            } => ErrorCode::Unavailable,
            _ => return Self::internal(e),
        };
        Self::new(code, e.to_string())
    }
}

impl From<neonhub_actors::Error> for ApiError {
    fn from(e: neonhub_actors::Error) -> Self {
        use neonhub_actors::Error as E;
        let code = match e {
            E::UnknownAgent(_) => ErrorCode::UnknownAgent,
            E::UnknownIntent(_) => ErrorCode::UnknownIntent,
            E::Overloaded { .. } => ErrorCode::Overloaded,
            E::RunInProgress(_) => ErrorCode::RunInProgress,
            E::RunIdConflict { .. } => ErrorCode::RunIdConflict,
            E::UnknownRun(_) => ErrorCode::UnknownRun,
            E::UnknownStep { .. } => ErrorCode::UnknownStep,
            E::RunFinished { status, .. } => {
                return Self::new(ErrorCode::RunFinished, e.to_string()).with_status(status);
            }
            E::StepNotInDoubt { status, .. } => {
                return Self::new(ErrorCode::StepNotInDoubt, e.to_string()).with_status(status);
            }
            E::Store(inner) => return inner.into(),
            E::Stopped => return Self::shutting_down(),
            other => return Self::internal(other),
        };
        Self::new(code, e.to_string())
    }
}

impl From<neonhub_projections::Error> for ApiError {
    fn from(e: neonhub_projections::Error) -> Self {
        use neonhub_projections::Error as E;
        match e {
            E::InvalidInput(message) => Self::new(ErrorCode::InvalidRequest, message),
            E::Store(inner) => inner.into(),
            other => Self::internal(other),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        Self::shutting_down()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    #[test]
    fn the_http_layers_own_errors_get_the_api_body_and_no_other_status_does() {
        for (status, code) in [
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeadersTooLarge,
            ),
            (StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout),
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        ] {
            // The code fixes the status, as for every other error.
            assert_eq!(code.status(), status);
            let (content_type, body) = http_layer_error_body(status).expect("a body");
            assert_eq!(content_type, "application/json");
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], code.as_str(), "{status}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("nothing was done"), "{message}");
        }
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(http_layer_error_body(status).is_none(), "{status}");
        }
    }

    #[test]
    fn client_mistakes_are_4xx_with_a_json_body() {
        let cases: Vec<(ApiError, u16)> = vec![
            (neonhub_actors::Error::UnknownAgent("x".into()).into(), 404),
            (neonhub_actors::Error::Overloaded { limit: 1 }.into(), 503),
            (
                neonhub_events::Error::EventTooLarge { size: 2, max: 1 }.into(),
                413,
            ),
            (
                neonhub_projections::Error::InvalidInput("cursor".into()).into(),
                400,
            ),
            (ApiError::invalid("limit", "must be a number"), 400),
            (
                neonhub_events::Error::Archived {
                    stream: None,
                    position: neonhub_events::Position(3),
                    archive: "/cold".into(),
                }
                .into(),
                410,
            ),
        ];
        for (error, status) in cases {
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{error}");
            let body = response.into_body().try_into_bytes().unwrap();
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["error"]["code"], error.code());
            assert!(value["error"]["message"].is_string());
        }
    }
}
