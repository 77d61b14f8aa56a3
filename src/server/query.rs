//! Strict query strings: each route's parameters are a serde struct that
//! refuses unknown parameters, and a repeated parameter or a bad value is a
//! 400 naming the parameter. An empty value counts as absent.

use std::collections::HashSet;
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev};
use neonhub_events::{ErrorKind, Position, RunId, RunKind, Timestamp};
use neonhub_projections::{Cursor, MAX_PAGE_SIZE, RunSort, RunStatus, TimelineBy};
use serde::de::{DeserializeOwned, Error as _, value::MapDeserializer};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use utoipa::IntoParams;

use super::errors::ApiError;
use super::openapi::{BucketName, ErrorKindName, RunKindName, RunStatusName, SortName};
use crate::config::parse_time;

/// A route's parameters, `T`, parsed from the query string.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned> Query<T> {
    /// Parses `query`: a parameter given twice, one `T` does not take, or a
    /// bad value is a 400 naming it.
    pub(crate) fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| ApiError::invalid("query string", e))?;
        let mut seen = HashSet::new();
        if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(ApiError::invalid(name, "given more than once"));
        }
        let params = MapDeserializer::<_, serde::de::value::Error>::new(pairs.into_iter());
        serde_path_to_error::deserialize(params)
            .map(Query)
            .map_err(|e| {
                let name = e.path().to_string();
                ApiError::invalid(&name, e.into_inner())
            })
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        ready(Self::parse(req.query_string()))
    }
}

/// The `{run_id}` of a route's path; a 400 unless it is a UUID.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathRunId(pub(crate) RunId);

impl FromRequest for PathRunId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let raw = req.match_info().get("run_id").unwrap_or_default();
        ready(
            raw.parse()
                .map(PathRunId)
                .map_err(|_| ApiError::invalid("run_id", format!("{raw:?} is not a UUID"))),
        )
    }
}

/// A parameter's value, parsed from its text.
pub(crate) trait Param: Sized {
    /// Parses a non-empty value; the error says what is wrong with it.
    fn parse_param(text: &str) -> Result<Self, String>;
}

/// `deserialize_with` for an optional parameter (with `#[serde(default)]`):
/// empty is absent, anything else must parse.
pub(crate) fn param<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Param,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    T::parse_param(&text).map(Some).map_err(D::Error::custom)
}

impl Param for String {
    fn parse_param(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl Param for bool {
    fn parse_param(text: &str) -> Result<Self, String> {
        match text {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{text:?} is not true or false")),
        }
    }
}

impl Param for u64 {
    fn parse_param(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| format!("{text:?} is not a whole number"))
    }
}

impl Param for Position {
    fn parse_param(text: &str) -> Result<Self, String> {
        u64::parse_param(text).map(Position)
    }
}

impl Param for Timestamp {
    fn parse_param(text: &str) -> Result<Self, String> {
        parse_time(text)
    }
}

impl Param for RunKind {
    fn parse_param(text: &str) -> Result<Self, String> {
        match text {
            "agent" => Ok(RunKind::Agent),
            "connector" => Ok(RunKind::Connector),
            _ => Err("expected agent or connector".to_owned()),
        }
    }
}

impl Param for RunStatus {
    fn parse_param(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "expected running, succeeded or failed".to_owned())
    }
}

impl Param for ErrorKind {
    fn parse_param(text: &str) -> Result<Self, String> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("expected one of {}", kinds.join(", "))
            })
    }
}

impl Param for Uuid {
    fn parse_param(text: &str) -> Result<Self, String> {
        Uuid::parse_str(text).map_err(|_| format!("{text:?} is not a UUID"))
    }
}

impl Param for RunSort {
    fn parse_param(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "expected started or duration".to_owned())
    }
}

impl Param for TimelineBy {
    fn parse_param(text: &str) -> Result<Self, String> {
        text.parse().map_err(|_| "expected hour or day".to_owned())
    }
}

impl Param for Cursor {
    fn parse_param(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "not a cursor this API handed out".to_owned())
    }
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Between<const MIN: u64, const MAX: u64>(pub(crate) u64);

impl<const MIN: u64, const MAX: u64> Param for Between<MIN, MAX> {
    fn parse_param(text: &str) -> Result<Self, String> {
        let n = u64::parse_param(text)?;
        if (MIN..=MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be {MIN} to {MAX}"))
        }
    }
}

/// For the routes that take no parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// The longest wait a client may ask of `POST /v1/runs`.
pub(crate) const MAX_WAIT_MS: u64 = 300_000;

/// `POST /v1/runs?wait=&timeout_ms=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubmitParams {
    /// Wait for the run to finish (the default) or answer once it started.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = bool)]
    pub(crate) wait: Option<bool>,
    /// How long to wait, in milliseconds (default 30000); then the answer
    /// is 202 while the run goes on.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = u64, minimum = 1, maximum = 300000)]
    pub(crate) timeout_ms: Option<Between<1, MAX_WAIT_MS>>,
}

/// The largest page `GET /v1/runs` answers, as a parameter bound.
const MAX_LIMIT: u64 = MAX_PAGE_SIZE as u64;

/// `GET /v1/runs?agent=&kind=&status=&intent=&error_kind=&correlation=&since=&until=&sort=&limit=&cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only runs of this agent or connector (by name).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) agent: Option<String>,
    /// Only agent runs, or only connector runs.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = RunKindName)]
    pub(crate) kind: Option<RunKind>,
    /// Only runs with this status.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = RunStatusName)]
    pub(crate) status: Option<RunStatus>,
    /// Only runs submitted for this intent.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) intent: Option<String>,
    /// Only runs whose error has this kind (`error.kind` of a row).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = ErrorKindName)]
    pub(crate) error_kind: Option<ErrorKind>,
    /// Only the runs of one request: a correlation id.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = uuid::Uuid)]
    pub(crate) correlation: Option<Uuid>,
    /// Only runs started at or after this time. A time is RFC 3339
    /// (`2026-11-24T10:00:00Z`), a date (`2026-11-24`, midnight UTC), a
    /// duration back from now (`90s`, `15m`, `2h`, `7d`), or a Unix time
    /// with its unit (`1795975430s`, `...ms`, `...us`; from 1e9 seconds on,
    /// a smaller number with a unit is a duration). A bare number is 400.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) since: Option<Timestamp>,
    /// Only runs started before this time (written as for `since`).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) until: Option<Timestamp>,
    /// The order: `started` (newest first, the default) or `duration`
    /// (longest first, finished runs only).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = SortName)]
    pub(crate) sort: Option<RunSort>,
    /// The page size (default 50).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = u64, minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<Between<1, MAX_LIMIT>>,
    /// Where the page starts: the `next_cursor` of the page before (with
    /// the same filters); any other value is 400.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) cursor: Option<Cursor>,
}

/// `GET /v1/reports/agents?since=&until=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// Only runs started at or after this time: RFC 3339, a date, a
    /// duration back from now (`90s`, `15m`, `2h`, `7d`) or a Unix time with
    /// its unit (`1795975430s`, `...ms`, `...us`), as for `GET /v1/runs`. A
    /// bare number is 400.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) since: Option<Timestamp>,
    /// Only runs started before this time (written as for `since`).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) until: Option<Timestamp>,
}

/// `GET /v1/reports/timeline?since=&until=&by=&agent=&kind=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineParams {
    /// The first bucket holds this time (written as for `GET /v1/runs`;
    /// default: 24 hours, or 30 days `by=day`, before `until`).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) since: Option<Timestamp>,
    /// The end of the window (default: now).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) until: Option<Timestamp>,
    /// The bucket: `hour` (the default) or `day`. At most 1,000 buckets.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = BucketName)]
    pub(crate) by: Option<TimelineBy>,
    /// Only runs of this agent or connector.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = String)]
    pub(crate) agent: Option<String>,
    /// Only agent runs, or only connector runs.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = RunKindName)]
    pub(crate) kind: Option<RunKind>,
}

/// `GET /v1/events?from=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedParams {
    /// The log position to start from (default: the head, so only new
    /// events). A `Last-Event-ID` header wins over it.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = u64)]
    pub(crate) from: Option<Position>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, deserialize_with = "param")]
        agent: Option<String>,
        #[serde(default, deserialize_with = "param")]
        limit: Option<u64>,
        #[serde(default, deserialize_with = "param")]
        wait: Option<bool>,
        #[serde(default, deserialize_with = "param")]
        since: Option<Timestamp>,
    }

    fn error(query: &str) -> String {
        Query::<Sample>::parse(query).unwrap_err().to_string()
    }

    #[test]
    fn unknown_repeated_and_bad_parameters_are_named() {
        let err = error("agnet=x");
        assert!(err.contains("agnet"), "{err}");
        let err = error("agent=a&agent=b");
        assert!(err.contains("more than once"), "{err}");
        assert!(error("limit=ten").contains("limit"));
        assert!(error("wait=maybe").contains("wait"));
        assert!(error("since=soon").contains("since"));
        let Query(p) = Query::<Sample>::parse("limit=&agent=echo").unwrap();
        assert_eq!(p.limit, None);
        assert_eq!(p.agent.as_deref(), Some("echo"));
        assert_eq!((p.wait, p.since), (None, None));
        assert!(Query::<NoParams>::parse("").is_ok());
        assert!(Query::<NoParams>::parse("x=1").is_err());
    }

    #[test]
    fn bounds_and_kinds_are_checked() {
        let err = Query::<ListParams>::parse("limit=0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limit: must be 1 to 1000"), "{err}");
        let Query(p) = Query::<ListParams>::parse("limit=1000&kind=connector").unwrap();
        assert_eq!(p.limit.map(|l| l.0), Some(1000));
        assert_eq!(p.kind, Some(RunKind::Connector));
        let Query(p) = Query::<ListParams>::parse(
            "error_kind=in_doubt&sort=duration&correlation=0193a8f0-0000-7000-8000-000000000000",
        )
        .unwrap();
        assert_eq!(p.error_kind, Some(ErrorKind::InDoubt));
        assert_eq!(p.sort, Some(RunSort::Duration));
        assert!(p.correlation.is_some());
        for bad in ["error_kind=oops", "sort=size", "correlation=42"] {
            let name = bad.split('=').next().unwrap();
            let err = Query::<ListParams>::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{name}:")), "{err}");
        }
        let err = Query::<TimelineParams>::parse("by=week")
            .unwrap_err()
            .to_string();
        assert!(err.contains("by: expected hour or day"), "{err}");
        let err = Query::<SubmitParams>::parse("timeout_ms=0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout_ms: must be 1 to 300000"), "{err}");
    }
}
