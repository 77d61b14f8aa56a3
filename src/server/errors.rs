//! API errors: a status, a stable code and a message, answered as
//! `{"error": {"code", "message"}}`. A client's mistake is always a 4xx;
//! messages never carry secrets.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: a field (or the body) is malformed; the message names it.
    pub(crate) fn invalid(field: &str, message: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{field}: {message}"),
        )
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down; retry on another node or after it restarts",
        )
    }

    pub(crate) fn internal(message: impl fmt::Display) -> Self {
        tracing::error!("internal error: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            ));
        }
        response.body(json!({"error": {"code": self.code, "message": self.message}}).to_string())
    }
}

impl From<neonhub_events::Error> for ApiError {
    fn from(e: neonhub_events::Error) -> Self {
        use neonhub_events::Error as E;
        match &e {
            E::EventTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            E::InvalidStreamId { .. } | E::InvalidInput(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            E::WrongExpectedVersion { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            E::Closed => Self::shutting_down(),
            E::Backend {
                retryable: true, ..
            } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            _ => Self::internal(e),
        }
    }
}

impl From<neonhub_actors::Error> for ApiError {
    fn from(e: neonhub_actors::Error) -> Self {
        use neonhub_actors::Error as E;
        match e {
            E::UnknownAgent(_) => Self::not_found("unknown_agent", e.to_string()),
            E::UnknownIntent(_) => Self::not_found("unknown_intent", e.to_string()),
            E::Overloaded { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            }
            E::RunInProgress(_) => {
                Self::new(StatusCode::CONFLICT, "run_in_progress", e.to_string())
            }
            E::Store(inner) => inner.into(),
            E::Stopped => Self::shutting_down(),
            other => Self::internal(other),
        }
    }
}

impl From<neonhub_projections::Error> for ApiError {
    fn from(e: neonhub_projections::Error) -> Self {
        use neonhub_projections::Error as E;
        match e {
            E::InvalidInput(message) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
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
