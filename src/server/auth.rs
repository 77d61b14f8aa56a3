//! The optional bearer token: every route but `/healthz` and the
//! dashboard's static files needs `Authorization: Bearer <token>` when one
//! is configured. The comparison is
//! constant-time ([`crate::Token::matches`]); the token is never logged or
//! echoed.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use super::AppState;
use super::errors::ApiError;

/// Routes open without the token.
const OPEN: &[&str] = &["/healthz"];

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
    if OPEN.contains(&req.path()) || super::assets::is_public(req.path()) {
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
