//! The optional bearer token: every route but `/healthz` needs
//! `Authorization: Bearer <token>` when one is configured. The comparison is
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
    if OPEN.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let error = match presented {
        None => ApiError::unauthorized("missing bearer token: send Authorization: Bearer <token>"),
        Some(value) if token.matches(value) => {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(_) => ApiError::unauthorized("wrong bearer token"),
    };
    Ok(req.into_response(error.error_response()))
}
