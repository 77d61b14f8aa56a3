//! The optional bearer token: every route but `/healthz`, `/openapi.json`
//! and the dashboard's static files needs `Authorization: Bearer <token>`
//! when one is configured. The comparison is
//! constant-time ([`crate::Token::matches`]); the token is never logged or
//! echoed.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use super::AppState;
use super::errors::{ApiError, ErrorCode};

/// Routes open without the token: the liveness probe, and the API's
/// description (how to call it, nothing of what it holds).
const OPEN: &[&str] = &["/healthz", "/openapi.json"];

/// Whether `req` is a step call (`POST /v1/runs/{run_id}/steps`), which
/// its handler authorizes: by the attempt's steps token or the service's.
fn is_step_call(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::POST
        && req
            .path()
            .strip_prefix("/v1/runs/")
            .and_then(|rest| rest.strip_suffix("/steps"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Who calls a step: `Ok(None)` for a caller with the service's token (or
/// any caller when auth is off and none is presented), `Ok(Some(token))`
/// for one presenting an attempt's steps token (the orchestrator checks
/// it is the running attempt's).
///
/// # Errors
/// 401 for no token when the service has one, or a token that is neither.
pub(crate) fn step_caller(
    req: &actix_web::HttpRequest,
    service: Option<&super::Token>,
) -> Result<Option<uuid::Uuid>, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    match (service, presented) {
        (Some(token), Some(value)) if token.matches(value) => Ok(None),
        (_, Some(value)) => std::str::from_utf8(value)
            .ok()
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "wrong bearer token: send the steps_token of the running attempt",
                )
            }),
        (Some(_), None) => Err(ApiError::unauthorized(
            "missing bearer token: send Authorization: Bearer <steps_token>",
        )),
        (None, None) => Ok(None),
    }
}

pub(crate) async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.token.clone());
    let Some(token) = token else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if OPEN.contains(&req.path()) || super::assets::is_public(req.path()) || is_step_call(&req) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    let error = match presented {
        None => ApiError::unauthorized("missing bearer token: send Authorization: Bearer <token>"),
        Some(value) if token.matches(value) => {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(_) => ApiError::unauthorized("wrong bearer token"),
    };
    Ok(req.into_response(error.error_response()))
}

/// The longest request target (path and query) served; longer gets 414.
pub(crate) const MAX_URI_BYTES: usize = 8 << 10;
/// The most request headers served; more gets 431.
pub(crate) const MAX_HEADERS: usize = 64;
/// The most bytes of header names and values served; more gets 431.
pub(crate) const MAX_HEADER_BYTES: usize = 16 << 10;

/// Refuses a request whose head is over the API's limits with a JSON 414
/// or 431 before any route sees it. (Heads over actix-http's own, larger
/// limits - a target over 64 KiB, more than 96 headers - or that do not
/// parse as HTTP never reach here: actix-http answers those 400 or 431,
/// with the JSON body of `super::errors::http_layer_error_body` through the
/// patch in `vendor/actix-http`, and `crate::init_logging` keeps its log
/// line to a counted WARN.)
pub(crate) async fn check_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let error = if target > MAX_URI_BYTES {
        Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!(
                "the request target is {target} bytes, over the {MAX_URI_BYTES} this API \
                 serves: send long values in a POST body"
            ),
        ))
    } else {
        let headers = req.headers();
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        let count = headers.len();
        (count > MAX_HEADERS || bytes > MAX_HEADER_BYTES).then(|| {
            ApiError::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "{count} request headers of {bytes} bytes: this API serves at most \
                     {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all"
                ),
            )
        })
    };
    match error {
        Some(error) => Ok(req.into_response(error.error_response())),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110, 11.1), with one or more spaces after it.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii_start();
    (!token.is_empty()).then_some(token)
}
