//! The OpenAPI 3.1 description of the HTTP API, served at
//! `GET /openapi.json`. It is derived from the code: each handler's
//! `#[utoipa::path]` (method, path, parameters, body, statuses), the
//! `ToSchema` of the bodies it answers with ([`crate::view`],
//! [`super::responses`], [`super::errors`]), and the route table of
//! [`super`], which lists each handler once for both the router and this
//! description. Like `/healthz` it needs no token: it says how to call the
//! API, nothing about what is in it.

use std::borrow::Cow;
use std::sync::LazyLock;

use actix_web::HttpResponse;
use neonhub_events::{ErrorKind, RunKind, RunStatus, StepOutcome};
use neonhub_projections::{RunSort, TimelineBy};
use utoipa::openapi::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

use super::errors::ErrorBody;

/// The name of the bearer token's security scheme (the routes'
/// `security(("bearer" = []))` name it).
const BEARER: &str = "bearer";

/// Adds the bearer token's security scheme.
pub(crate) struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>` (the scheme in any case). Required on \
                         every route but `/healthz` and `/openapi.json` when the server was \
                         started with a token (`serve --token`, `NEONHUB_TOKEN`); without one \
                         configured, no route asks for it. A missing or wrong token is 401 \
                         `unauthorized` with `WWW-Authenticate: Bearer`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// States for every query parameter what [`super::query`] does for all:
/// an empty value (`?limit=`) counts as absent, so it is valid whatever
/// the parameter's schema.
pub(crate) struct EmptyIsAbsent;

impl Modify for EmptyIsAbsent {
    fn modify(&self, openapi: &mut OpenApi) {
        for operation in operations(openapi) {
            let parameters = operation.parameters.iter_mut().flatten();
            for parameter in parameters.filter(|p| p.parameter_in == ParameterIn::Query) {
                if let Some(schema) = parameter.schema.take() {
                    let empty = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([""]))
                        .description(Some("empty: as if absent"));
                    parameter.schema = Some(AnyOfBuilder::new().item(schema).item(empty).into());
                }
            }
        }
    }
}

/// Adds to every operation the answers of [`super::auth::check_head`],
/// which sees every request before its route: 414 for a target over
/// [`super::auth::MAX_URI_BYTES`], 431 for headers over
/// [`super::auth::MAX_HEADERS`] or [`super::auth::MAX_HEADER_BYTES`].
pub(crate) struct HeadLimits;

impl Modify for HeadLimits {
    fn modify(&self, openapi: &mut OpenApi) {
        use super::auth::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};
        let error = |description: String| {
            let body = Ref::from_schema_name(<ErrorBody<'static> as ToSchema>::name());
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(body)).build(),
                )
                .build()
        };
        let too_long = error(format!(
            "The request target (path and query) is over {MAX_URI_BYTES} bytes: `uri_too_long`."
        ));
        let too_large = error(format!(
            "More than {MAX_HEADERS} request headers, or over {MAX_HEADER_BYTES} bytes of them: \
             `headers_too_large`."
        ));
        for operation in operations(openapi) {
            let responses = &mut operation.responses.responses;
            responses.insert("414".to_owned(), too_long.clone().into());
            responses.insert("431".to_owned(), too_large.clone().into());
        }
    }
}

/// Every operation of `openapi`.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi
        .paths
        .paths
        .values_mut()
        .flat_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ]
        })
        .flatten()
}

/// The description as served, rendered once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    use utoipa::OpenApi as _;
    super::ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI description renders as JSON")
});

/// `GET /openapi.json`: this description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This description",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 description of this API.",
         content_type = "application/json", body = Object),
    ),
)]
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

/// A string schema whose values are `names`.
fn names(names: impl IntoIterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

/// Schemas for the names of the log's enums (`running`, `connector`, ...)
/// as the API writes them: built from the enums' own `as_str`, so a new
/// variant shows here.
macro_rules! name_schema {
    ($(#[$doc:meta])* $marker:ident, $name:literal, $values:expr, $description:literal) => {
        $(#[$doc])*
        pub(crate) struct $marker;

        impl PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                names($values, $description)
            }
        }

        impl ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

name_schema!(
    /// A [`RunStatus`] by name.
    RunStatusName,
    "RunStatus",
    RunStatus::ALL.map(RunStatus::as_str),
    "Where a run stands: `running` (started or waiting for a retry), `succeeded` or `failed`."
);

/// Every [`RunKind`].
const RUN_KINDS: [RunKind; 2] = [RunKind::Agent, RunKind::Connector];

name_schema!(
    /// A [`RunKind`] by name.
    RunKindName,
    "RunKind",
    RUN_KINDS.map(RunKind::as_str),
    "What ran: an `agent`, or a `connector` (a step of an agent's run)."
);

name_schema!(
    /// An [`ErrorKind`] by name.
    ErrorKindName,
    "ErrorKind",
    ErrorKind::ALL.map(ErrorKind::as_str),
    "Why a run failed."
);

name_schema!(
    /// A [`RunSort`] by name.
    SortName,
    "RunSort",
    [RunSort::Started, RunSort::Duration].map(RunSort::as_str),
    "`started`: newest first; `duration`: longest first, finished runs only."
);

name_schema!(
    /// A [`TimelineBy`] by name.
    BucketName,
    "TimelineBy",
    [TimelineBy::Hour, TimelineBy::Day].map(TimelineBy::as_str),
    "The width of a bucket of the timeline."
);

/// Every [`StepOutcome`].
const STEP_OUTCOMES: [StepOutcome; 2] = [StepOutcome::Sent, StepOutcome::NotSent];

name_schema!(
    /// A [`StepOutcome`] by name.
    StepOutcomeName,
    "StepOutcome",
    STEP_OUTCOMES.map(StepOutcome::as_str),
    "What an operator found a step in doubt did: `sent` (the vendor did it) or `not_sent` \
     (it never got it)."
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds and outcomes listed by hand are all of them (this match
    /// stops compiling when one is added).
    #[test]
    fn the_hand_listed_names_are_complete() {
        for kind in RUN_KINDS {
            match kind {
                RunKind::Agent | RunKind::Connector => {}
            }
        }
        for outcome in STEP_OUTCOMES {
            match outcome {
                StepOutcome::Sent | StepOutcome::NotSent => {}
            }
        }
        assert_eq!(RUN_KINDS.len(), 2);
        assert_eq!(STEP_OUTCOMES.len(), 2);
    }
}
