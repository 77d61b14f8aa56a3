//! The route handlers of the `/v1` API and the operational endpoints.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use neonhub_actors::{StartRun, SubmitRun, Target};
use neonhub_events::{Direction, Position, ReadFrom, RunId, RunKind};
use neonhub_projections::{Cursor, MAX_PAGE_SIZE, RunFilter, RunQueries, RunStatus};
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::errors::ApiError;
use super::query::Params;
use super::telemetry;
use crate::view::{detail_json, event_json, report_json, run_json};

/// How long `POST /v1/runs?wait=true` waits by default.
const DEFAULT_WAIT_MS: u64 = 30_000;
/// The longest wait a client may ask for.
const MAX_WAIT_MS: u64 = 300_000;
/// The default page size of `GET /v1/runs`.
const DEFAULT_LIMIT: usize = 50;
/// How long a read of a run the log has but the table not yet waits for it.
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

fn json_response(status: StatusCode, value: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(value.to_string())
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the body, refusing one over `limit` bytes (by its declared length
/// first, without reading it).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    if let Some(length) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid("body", e))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A validated `POST /v1/runs` body.
#[derive(Debug)]
struct NewRun {
    target: Target,
    input: Value,
    run_id: RunId,
    correlation_id: Option<Uuid>,
}

fn parse_new_run(body: &[u8]) -> Result<NewRun, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::invalid("body", "expected a JSON object"));
    };
    let text = |fields: &mut serde_json::Map<String, Value>, name: &str| match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(name, "expected a non-empty string")),
    };
    let agent = text(&mut fields, "agent")?;
    let intent = text(&mut fields, "intent")?;
    let run_id = text(&mut fields, "run_id")?
        .map(|s| {
            s.parse::<RunId>()
                .map_err(|_| ApiError::invalid("run_id", format!("{s:?} is not a UUID")))
        })
        .transpose()?;
    let correlation_id = text(&mut fields, "correlation_id")?
        .map(|s| {
            s.parse::<Uuid>()
                .map_err(|_| ApiError::invalid("correlation_id", format!("{s:?} is not a UUID")))
        })
        .transpose()?;
    let input = fields
        .remove("input")
        .ok_or_else(|| ApiError::invalid("input", "required (any JSON value)"))?;
    if let Some(name) = fields.keys().next() {
        return Err(ApiError::invalid(
            name,
            "unknown field; a run takes agent or intent, input, run_id, correlation_id",
        ));
    }
    let target = match (agent, intent) {
        (Some(agent), None) => Target::Agent(agent),
        (None, Some(intent)) => Target::Intent(intent),
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
        run_id: run_id.unwrap_or_default(),
        correlation_id,
    })
}

/// `POST /v1/runs`.
pub(crate) async fn submit_run(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut params = Params::parse(req.query_string(), &["wait", "timeout_ms"])?;
    let wait = params.bool("wait")?.unwrap_or(true);
    let timeout_ms = params.u64("timeout_ms")?.unwrap_or(DEFAULT_WAIT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(
            "timeout_ms",
            format!("must be 1 to {MAX_WAIT_MS}"),
        ));
    }
    if *state.shutdown.borrow() {
        return Err(ApiError::shutting_down());
    }
    if !is_json(&req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the run as Content-Type: application/json",
        ));
    }
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let run = parse_new_run(&body)?;
    let submit = SubmitRun {
        target: run.target,
        input: run.input,
        run_id: Some(run.run_id),
        correlation_id: run.correlation_id,
    };
    // The orchestrator routes the run and answers once its `RunStarted` is
    // durable (or with the refusal); the run then goes to its end whether or
    // not this request waits for it.
    let mut ticket = state
        .orchestrator
        .send(StartRun(submit))
        .await
        .map_err(|_| ApiError::shutting_down())??;
    let running = json_response(
        StatusCode::ACCEPTED,
        &json!({"run_id": ticket.run_id().to_string(), "status": "running"}),
    );
    if !wait {
        return Ok(running);
    }
    match tokio::time::timeout(Duration::from_millis(timeout_ms), ticket.outcome_mut()).await {
        // The row as the table will hold it, folded as its events were appended.
        Ok(outcome) => Ok(json_response(StatusCode::OK, &run_json(&outcome?.run))),
        Err(_) => Ok(running),
    }
}

fn parse_run_id(req: &HttpRequest) -> Result<RunId, ApiError> {
    let raw = req.match_info().get("run_id").unwrap_or_default();
    raw.parse()
        .map_err(|_| ApiError::invalid("run_id", format!("{raw:?} is not a UUID")))
}

fn no_such_run(run_id: RunId) -> ApiError {
    ApiError::not_found("unknown_run", format!("no run {run_id}"))
}

/// Waits (briefly) for the table to catch up when the log has a run the
/// table does not have yet, so a client reads what it just wrote.
async fn wait_for_table(state: &AppState, run_id: RunId) -> Result<bool, ApiError> {
    let in_log = !state
        .store
        .read_stream(&run_id.stream(), Direction::Forwards, ReadFrom::Start, 1)
        .await?
        .is_empty();
    if !in_log {
        return Ok(false);
    }
    let head = state.store.head().await?;
    let mut rx = state.checkpoints.clone();
    // Not `checkpoint >= head`: on EventStoreDB the head may lie past system
    // events the table never sees.
    let _ = tokio::time::timeout(
        READ_YOUR_WRITES,
        crate::service::applied_up_to(&*state.store, &mut rx, head),
    )
    .await;
    Ok(true)
}

/// `GET /v1/runs/{run_id}`.
pub(crate) async fn get_run(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run_id = parse_run_id(&req)?;
    Params::parse(req.query_string(), &[])?;
    let lookup = |state: &web::Data<AppState>| {
        let path = state.projection_path.clone();
        web::block(move || RunQueries::open(path)?.get(run_id))
    };
    let mut detail = lookup(&state).await??;
    if detail.is_none() && wait_for_table(&state, run_id).await? {
        detail = lookup(&state).await??;
    }
    let detail = detail.ok_or_else(|| no_such_run(run_id))?;
    Ok(json_response(StatusCode::OK, &detail_json(&detail)))
}

/// `GET /v1/runs/{run_id}/events`.
pub(crate) async fn run_events(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run_id = parse_run_id(&req)?;
    Params::parse(req.query_string(), &[])?;
    let events = state
        .store
        .read_stream(
            &run_id.stream(),
            Direction::Forwards,
            ReadFrom::Start,
            usize::MAX,
        )
        .await?;
    if events.is_empty() {
        return Err(no_such_run(run_id));
    }
    let events: Vec<Value> = events.iter().map(|e| event_json(&state.codec, e)).collect();
    Ok(json_response(StatusCode::OK, &json!({ "events": events })))
}

/// `GET /v1/runs`.
pub(crate) async fn list_runs(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut params = Params::parse(
        req.query_string(),
        &[
            "agent", "kind", "status", "intent", "since", "until", "limit", "cursor",
        ],
    )?;
    let mut filter = RunFilter::new();
    if let Some(agent) = params.string("agent") {
        filter = filter.target(agent);
    }
    if let Some(kind) = params.string("kind") {
        filter = filter.kind(match kind.as_str() {
            "agent" => RunKind::Agent,
            "connector" => RunKind::Connector,
            _ => return Err(ApiError::invalid("kind", "expected agent or connector")),
        });
    }
    if let Some(status) = params.string("status") {
        let status: RunStatus = status
            .parse()
            .map_err(|_| ApiError::invalid("status", "expected running, succeeded or failed"))?;
        filter = filter.status(status);
    }
    if let Some(intent) = params.string("intent") {
        filter = filter.intent(intent);
    }
    let since = params.time("since")?;
    let until = params.time("until")?;
    filter = filter.started_between(since, until);
    let limit = params.u64("limit")?.unwrap_or(DEFAULT_LIMIT as u64);
    if limit == 0 || limit > MAX_PAGE_SIZE as u64 {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let cursor = params
        .string("cursor")
        .map(|c| {
            c.parse::<Cursor>()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this API handed out"))
        })
        .transpose()?;
    let path = state.projection_path.clone();
    let page =
        web::block(move || RunQueries::open(path)?.list(&filter, cursor, limit as usize)).await??;
    let runs: Vec<Value> = page.runs.iter().map(run_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"runs": runs, "next_cursor": page.next.map(|c| c.to_string())}),
    ))
}

/// `GET /v1/reports/agents`.
pub(crate) async fn report(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut params = Params::parse(req.query_string(), &["since", "until"])?;
    let since = params.time("since")?;
    let until = params.time("until")?;
    let path = state.projection_path.clone();
    let reports = web::block(move || RunQueries::open(path)?.report(since, until)).await??;
    let agents: Vec<Value> = reports.iter().map(report_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "agents": agents })))
}

/// `GET /v1/agents`.
pub(crate) async fn agents(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Params::parse(req.query_string(), &[])?;
    let agents: Vec<Value> = state
        .catalog
        .agents
        .iter()
        .map(|a| json!({"name": a.name, "kind": "agent", "intents": a.intents}))
        .collect();
    let connectors: Vec<Value> = state
        .catalog
        .connectors
        .iter()
        .map(|c| json!({"name": c.name, "kind": "connector", "mode": c.mode}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"agents": agents, "connectors": connectors}),
    ))
}

/// `GET /metrics`: the projection's run metrics and the live operational ones.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.run_metrics.render();
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(&telemetry::render());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: ready while the projection follows the log and the
/// service is not shutting down.
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::shutting_down());
    }
    if state.checkpoints.has_changed().is_err() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "projection_stopped",
            "the projection runner has stopped; see the service log",
        ));
    }
    let checkpoint: Position = *state.checkpoints.borrow();
    let head = state.store.head().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ready", "checkpoint": checkpoint.0, "head": head.0}),
    ))
}

/// Anything else: a JSON 404.
pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        format!("no route {} {}", req.method(), req.path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_body_names_the_bad_field() {
        let cases = [
            (&b"{"[..], "body"),
            (b"[1]", "body"),
            (b"{\"input\": 1}", "agent"),
            (b"{\"agent\": 3, \"input\": 1}", "agent"),
            (b"{\"agent\": \"echo\"}", "input"),
            (
                b"{\"agent\": \"echo\", \"input\": 1, \"run_id\": \"x\"}",
                "run_id",
            ),
            (
                b"{\"agent\": \"echo\", \"input\": 1, \"colour\": \"red\"}",
                "colour",
            ),
            (
                b"{\"agent\": \"echo\", \"intent\": \"echo\", \"input\": 1}",
                "agent",
            ),
        ];
        for (body, field) in cases {
            let err = parse_new_run(body).unwrap_err();
            assert!(err.to_string().contains(&format!("{field}:")), "{err}");
        }
        let ok = parse_new_run(br#"{"intent": "sms.send", "input": {"to": "+15550100"}}"#).unwrap();
        assert_eq!(ok.target, Target::Intent("sms.send".into()));
    }
}
