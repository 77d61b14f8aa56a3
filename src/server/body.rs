//! The `POST /v1/runs` request: refused while draining (503), unless it is
//! JSON in UTF-8 and not content-encoded (415), over `--max-body-bytes`
//! (413, by its declared length first), and then a body that is malformed,
//! names a key twice, or has a bad or unknown field (400, naming it). actix-web reads the body ([`web::JsonConfig`]); the checks
//! run in this order because the handler takes [`Accepting`], then
//! [`JsonMediaType`], then the JSON.

use std::future::{Ready, ready};
use std::str::FromStr;

use actix_web::error::JsonPayloadError;
use actix_web::mime;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev, web};
use neonhub_actors::Target;
use neonhub_events::{RunId, StepOutcome};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::errors::{ApiError, ErrorCode};

/// Present while the server takes new work; 503 `shutting_down` once it
/// drains.
#[derive(Debug)]
pub(crate) struct Accepting;

impl FromRequest for Accepting {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let draining = req
            .app_data::<web::Data<AppState>>()
            .is_none_or(|state| *state.shutdown.borrow());
        ready(if draining {
            Err(ApiError::shutting_down())
        } else {
            Ok(Accepting)
        })
    }
}

/// Present when the body is declared `application/json` or
/// `application/*+json`; 415 otherwise.
#[derive(Debug)]
pub(crate) struct JsonMediaType;

fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(m)) => {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        }
        _ => false,
    }
}

impl FromRequest for JsonMediaType {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let unsupported =
            |message: &str| Err(ApiError::new(ErrorCode::UnsupportedMediaType, message));
        ready(if !is_json(req) {
            unsupported("send the run as Content-Type: application/json")
        } else if !is_utf8(req) {
            unsupported("JSON is UTF-8: send charset=utf-8, or no charset")
        } else if is_encoded(req) {
            unsupported(
                "bodies are not decoded here: send it without a Content-Encoding (uncompressed)",
            )
        } else {
            Ok(JsonMediaType)
        })
    }
}

/// Whether the declared charset, if any, is UTF-8 (JSON's only encoding
/// between systems, RFC 8259).
fn is_utf8(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(m)) => m.get_param(mime::CHARSET).is_none_or(|c| {
            c.as_str().eq_ignore_ascii_case("utf-8") || c.as_str().eq_ignore_ascii_case("utf8")
        }),
        _ => false,
    }
}

/// Whether the body declares a content coding other than `identity`.
fn is_encoded(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::CONTENT_ENCODING)
        .any(|v| {
            !v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
        })
}

/// A JSON body ([`Strict`]) read within the server's body timeout: a
/// client that stops sending gets 408 and its connection closes, instead of
/// holding it for ever.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl FromRequest for JsonBody {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let timeout = req
            .app_data::<web::Data<AppState>>()
            .map_or(crate::config::DEFAULT_BODY_TIMEOUT, |s| s.body_timeout);
        let read = web::Json::<Strict>::from_request(req, payload);
        Box::pin(async move {
            match tokio::time::timeout(timeout, read).await {
                Ok(json) => Ok(JsonBody(json?.into_inner().0)),
                Err(_) => Err(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "the body did not arrive whole within {} s: send it in one go",
                        timeout.as_secs_f64()
                    ),
                )
                .into()),
            }
        })
    }
}

/// How actix-web reads a JSON body: at most `limit` bytes; the content type
/// is [`JsonMediaType`]'s to check.
pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|e, _| json_error(e).into())
}

/// A body actix-web could not read as JSON, as today's [`ApiError`]s.
pub(crate) fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::too_large(limit),
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the run as Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::invalid("body", format!("malformed JSON: {e}"))
        }
        other => ApiError::invalid("body", other),
    }
}

/// A JSON body in which no object names a key twice (RFC 8259 leaves the
/// meaning of that to the reader; the server refuses to guess, where
/// serde_json would keep the last).
#[derive(Debug)]
pub(crate) struct Strict(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    // Every other value as serde_json reads it.
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A string field that, when given, is not blank.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if !s.trim().is_empty() => Ok(Text(s)),
            _ => Err(D::Error::custom("expected a non-empty string")),
        }
    }
}

/// A UUID given as a string.
struct Id<T>(T);

impl<'de, T: FromStr> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(deserializer)?;
        s.parse()
            .map(Id)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a UUID")))
    }
}

/// `deserialize_with` for a required field that may be `null`: present
/// (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The fields of a `POST /v1/runs` body, as sent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewRunFields)]
pub(crate) struct RunBody {
    /// The agent to run, by name (or give `intent`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"\S")]
    agent: Option<Text>,
    /// What to do, for whichever agent takes it (or give `agent`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"\S")]
    intent: Option<Text>,
    /// The run's input: any JSON value, `null` included.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Value, required = true)]
    input: Option<Value>,
    /// The run's id (a new UUID v7 when absent). A resubmission with the
    /// same id and body answers the same run.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    run_id: Option<Id<RunId>>,
    /// Ties the run to others (a customer request, say); the run's own id
    /// when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    correlation_id: Option<Id<Uuid>>,
}

/// The schema of the `POST /v1/runs` body: [`RunBody`]'s fields, with
/// exactly one of `agent` and `intent`.
pub(crate) struct NewRunBody;

impl utoipa::PartialSchema for NewRunBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Type;
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder};
        use utoipa::openapi::{Ref, RefOr};
        // A branch matches when its field is there as a string (a `null`
        // one counts as absent, as the server reads it).
        let requiring = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .required(field)
        };
        let one_target = OneOfBuilder::new()
            .item(requiring("agent"))
            .item(requiring("intent"));
        AllOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(
                <RunBody as utoipa::ToSchema>::name(),
            )))
            .item(one_target)
            .description(Some(
                "A run to start: `input` and exactly one of `agent` and `intent`.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for NewRunBody {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("NewRun")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        schemas.push((RunBody::name().into(), RunBody::schema()));
        RunBody::schemas(schemas);
    }
}

/// A validated `POST /v1/runs` body.
#[derive(Debug)]
pub(crate) struct NewRun {
    pub(crate) target: Target,
    pub(crate) input: Value,
    pub(crate) run_id: RunId,
    pub(crate) correlation_id: Option<Uuid>,
}

impl NewRun {
    /// Validates a JSON body; a 400 names the field (`body` for the whole).
    pub(crate) fn from_json(body: Value) -> Result<NewRun, ApiError> {
        let body: RunBody = fields(body)?;
        let input = body
            .input
            .ok_or_else(|| ApiError::invalid("input", "required (any JSON value)"))?;
        let target = match (body.agent, body.intent) {
            (Some(Text(agent)), None) => Target::Agent(agent),
            (None, Some(Text(intent))) => Target::Intent(intent),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid("agent", "give agent or intent, not both"));
            }
            (None, None) => {
                return Err(ApiError::invalid("agent", "required: give agent or intent"));
            }
        };
        Ok(NewRun {
            target,
            input,
            run_id: body.run_id.map(|Id(id)| id).unwrap_or_default(),
            correlation_id: body.correlation_id.map(|Id(id)| id),
        })
    }
}

/// Reads `body` as `T`, a 400 naming the bad field (`body` for the whole).
fn fields<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid("body", "expected a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body" } else { &path };
        ApiError::invalid(field, e.into_inner())
    })
}

/// The longest `reason` or `decided_by` taken, in characters.
const MAX_NOTE_CHARS: usize = 1000;

fn note(field: &str, text: Option<Text>) -> Result<Option<String>, ApiError> {
    match text {
        Some(Text(s)) if s.chars().count() > MAX_NOTE_CHARS => Err(ApiError::invalid(
            field,
            format!("longer than {MAX_NOTE_CHARS} characters"),
        )),
        other => Ok(other.map(|Text(s)| s)),
    }
}

/// The `POST /v1/runs/{run_id}/cancel` body as sent (optional).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Cancel)]
pub(crate) struct CancelBody {
    /// Why, for the audit.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"\S", max_length = 1000)]
    reason: Option<Text>,
}

/// Why a run is cancelled, from the optional body of
/// `POST /v1/runs/{run_id}/cancel`: none (or `null`), or `{"reason": "..."}`.
pub(crate) fn cancel_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    if value.is_null() {
        return Ok(None);
    }
    let body: CancelBody = fields(value)?;
    note("reason", body.reason)
}

/// The `POST /v1/runs/{run_id}/steps` body as sent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StepCall)]
pub(crate) struct StepBody {
    /// The step's key: unique within the run, the same on every attempt
    /// (a retry or a resume replays a finished step by it).
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"\S", max_length = 200)]
    step: Option<Text>,
    /// The connector (`gmail`, `slack`, `twilio`, ...).
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"\S", max_length = 200)]
    connector: Option<Text>,
    /// Its operation (`send`, `post_message`, `send_sms`, ...).
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"\S", max_length = 200)]
    operation: Option<Text>,
    /// The operation's input; recorded in the step's events, so never
    /// credentials.
    #[serde(default)]
    #[schema(value_type = Object)]
    input: Option<Value>,
    /// The caller's attempt (as it was POSTed); a finished attempt's call
    /// is refused.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1)]
    attempt: Option<Value>,
}

/// A validated step call.
pub(crate) struct StepRequest {
    pub(crate) step: String,
    pub(crate) connector: String,
    pub(crate) operation: String,
    pub(crate) input: Value,
    pub(crate) attempt: Option<u32>,
}

/// The longest step key, connector or operation name taken, in characters.
const MAX_NAME_CHARS: usize = 200;

impl StepRequest {
    pub(crate) fn from_json(body: Value) -> Result<Self, ApiError> {
        let body: StepBody = fields(body)?;
        let name = |field: &str, text: Option<Text>| match text {
            Some(Text(s)) if s.chars().count() <= MAX_NAME_CHARS => Ok(s),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("longer than {MAX_NAME_CHARS} characters"),
            )),
            None => Err(ApiError::invalid(field, "required: a non-empty string")),
        };
        let attempt = match body.attempt {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                    .map(|n| n as u32)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "attempt",
                            "the attempt number you were given (1, 2, ...)",
                        )
                    })?,
            ),
        };
        Ok(StepRequest {
            step: name("step", body.step)?,
            connector: name("connector", body.connector)?,
            operation: name("operation", body.operation)?,
            input: body.input.unwrap_or(Value::Null),
            attempt,
        })
    }
}

/// The `POST /v1/runs/{run_id}/steps/{key}/resolve` body as sent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Resolution)]
pub(crate) struct ResolveBody {
    /// What the step did.
    #[serde(default)]
    #[schema(value_type = super::openapi::StepOutcomeName, required = true)]
    outcome: Option<Value>,
    /// Who decided (a name for the audit).
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"\S", max_length = 1000)]
    decided_by: Option<Text>,
    /// Why, for the audit.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"\S", max_length = 1000)]
    reason: Option<Text>,
}

/// A validated resolve body: `{"outcome": "sent"|"not_sent", "decided_by":
/// "...", "reason"?: "..."}`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) outcome: StepOutcome,
    pub(crate) decided_by: String,
    pub(crate) reason: Option<String>,
}

impl Resolution {
    pub(crate) fn from_json(body: Value) -> Result<Self, ApiError> {
        let body: ResolveBody = fields(body)?;
        let outcome = match body.outcome.as_ref().and_then(Value::as_str) {
            Some("sent") => StepOutcome::Sent,
            Some("not_sent") => StepOutcome::NotSent,
            _ => {
                return Err(ApiError::invalid(
                    "outcome",
                    "required: \"sent\" (the vendor did it) or \"not_sent\" (it never got it)",
                ));
            }
        };
        let decided_by = note("decided_by", body.decided_by)?.ok_or_else(|| {
            ApiError::invalid("decided_by", "required: who decided (a name for the audit)")
        })?;
        Ok(Resolution {
            outcome,
            decided_by,
            reason: note("reason", body.reason)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use serde_json::json;

    use super::*;

    #[test]
    fn json_and_json_suffixed_application_types_are_json() {
        let is = |content_type: Option<&str>| {
            let mut req = TestRequest::default();
            if let Some(value) = content_type {
                req = req.insert_header(("content-type", value));
            }
            is_json(&req.to_http_request())
        };
        assert!(is(Some("application/json")));
        assert!(is(Some("Application/JSON; charset=utf-8")));
        assert!(is(Some("application/vnd.neonhub.run+json")));
        assert!(!is(Some("text/json")));
        assert!(!is(Some("text/plain")));
        assert!(!is(None));
    }

    #[test]
    fn a_null_input_is_an_input_and_ids_are_uuids() {
        let run = NewRun::from_json(json!({"agent": "echo", "input": null})).unwrap();
        assert_eq!(run.input, Value::Null);
        let err = NewRun::from_json(json!({"agent": "echo", "input": 1, "correlation_id": "c"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("correlation_id: \"c\" is not a UUID"),
            "{err}"
        );
        let err = NewRun::from_json(json!({"agent": " ", "input": 1})).unwrap_err();
        assert!(
            err.to_string()
                .contains("agent: expected a non-empty string"),
            "{err}"
        );
    }

    #[test]
    fn a_cancel_body_is_optional_and_may_be_null() {
        assert_eq!(cancel_reason(b"").unwrap(), None);
        assert_eq!(cancel_reason(b" null ").unwrap(), None);
        assert_eq!(
            cancel_reason(br#"{"reason": "duplicate"}"#).unwrap(),
            Some("duplicate".to_owned())
        );
        assert!(cancel_reason(b"[]").is_err());
    }

    #[test]
    fn unreadable_bodies_keep_their_statuses() {
        use actix_web::ResponseError;
        let status = |e| json_error(e).status_code().as_u16();
        assert_eq!(status(JsonPayloadError::Overflow { limit: 1 }), 413);
        assert_eq!(
            status(JsonPayloadError::OverflowKnownLength {
                length: 2,
                limit: 1
            }),
            413
        );
        assert_eq!(status(JsonPayloadError::ContentType), 415);
    }
}
