//! The route handlers of the `/v1` API and the operational endpoints.

use std::sync::LazyLock;
use std::time::Duration;

use actix_web::dev::ResourceDef;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use neonhub_actors::{
    CallStep, CancelRun, ListAgents, ListConnectors, ResolveStep, StartRun, StepCallError,
    SubmitRun,
};
use neonhub_events::{Direction, Position, ReadFrom, RunEvent, RunId, RunStatus};
use neonhub_projections::{ProjectionState, RunFilter, RunQueries, Timeline, TimelineBy};
use serde::Serialize;

use super::AppState;
use super::body::{
    Accepting, CancelBody, JsonBody, JsonMediaType, NewRun, NewRunBody, Resolution, ResolveBody,
    StepBody, StepRequest, cancel_reason,
};
use super::errors::{ApiError, ErrorBody, ErrorCode};
use super::query::{
    ListParams, NoParams, PathRunId, Query, ReportParams, SubmitParams, TimelineParams,
};
use super::responses::{
    AgentsReport, Cancelling, CatalogView, EventsPage, Health, Ready, Resolved, Running, RunsPage,
    StepDone,
};
use super::telemetry;
use crate::view::{EventView, ReportView, RunDetailView, RunTreeView, RunView, TimelineView};

/// How long `POST /v1/runs?wait=true` waits by default.
const DEFAULT_WAIT_MS: u64 = 30_000;
/// The default page size of `GET /v1/runs`.
const DEFAULT_LIMIT: u64 = 50;
/// How long a read of a run the log has but the table not yet waits for it.
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// `POST /v1/runs`. The extractors check, in order: the parameters (400),
/// that the server takes work (503), the content type (415), the size (413)
/// and the JSON (400).
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    summary = "Submit a run",
    description = "Starts a run of an agent (by name, `agent`) or of whichever agent takes an intent \
        (`intent`). With `wait=true` (the default) it answers once the run ends (200, the run), \
        or after `timeout_ms` with 202 while it goes on; with `wait=false` at once with 202. \
        Resubmitting with the same `run_id` and body answers the same run (idempotent).",
    params(SubmitParams),
    request_body(content = NewRunBody, content_type = "application/json",
        description = "`application/json` or `application/*+json`, UTF-8, not content-encoded."),
    responses(
        (status = 200, description = "The run ended (succeeded or failed) within the wait.", body = RunView<'static>),
        (status = 202, description = "The run started and is still running (`wait=false`, or the wait ran out).", body = Running),
        (status = 400, description = "A bad query parameter, malformed JSON, a key given twice, or a bad or unknown field: `invalid_request`, naming it.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such agent (`unknown_agent`), or no agent takes the intent (`unknown_intent`).", body = ErrorBody<'static>),
        (status = 408, description = "The body did not arrive whole within the body timeout: `request_timeout`.", body = ErrorBody<'static>),
        (status = 409, description = "The `run_id` is taken by another request (`run_id_conflict`), its run is still going on another node (`run_in_progress`), or the log moved on under the write (`conflict`).", body = ErrorBody<'static>),
        (status = 413, description = "The body (or the run's first event) is over the limit: `too_large`.", body = ErrorBody<'static>),
        (status = 415, description = "Not JSON, not UTF-8, or content-encoded: `unsupported_media_type`.", body = ErrorBody<'static>),
        (status = 503, description = "Too many runs in flight (`overloaded`), draining (`shutting_down`), or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn submit_run(
    Query(params): Query<SubmitParams>,
    _: Accepting,
    _: JsonMediaType,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run = NewRun::from_json(body.0)?;
    let wait = params.wait.unwrap_or(true);
    let timeout_ms = params.timeout_ms.map_or(DEFAULT_WAIT_MS, |t| t.0);
    start_run(&state, run, wait, timeout_ms).await
}

/// Routes a validated run, hands it to the orchestrator and answers with
/// the run (or 202 while it is still running).
async fn start_run(
    state: &web::Data<AppState>,
    run: NewRun,
    wait: bool,
    timeout_ms: u64,
) -> Result<HttpResponse, ApiError> {
    let submit = SubmitRun {
        target: run.target,
        input: run.input,
        run_id: Some(run.run_id),
        correlation_id: run.correlation_id,
    };
    // The orchestrator routes the run (the one place runs are routed) and
    // answers once its `RunStarted` is durable, or with the refusal; the run
    // then goes to its end whether or not this request waits for it.
    let mut ticket = state
        .orchestrator
        .send(StartRun(submit))
        .await
        .map_err(|_| ApiError::shutting_down())??;
    let running = json_response(
        StatusCode::ACCEPTED,
        &Running {
            run_id: ticket.run_id().to_string(),
            status: RunStatus::Running,
        },
    );
    if !wait {
        return Ok(running);
    }
    match tokio::time::timeout(Duration::from_millis(timeout_ms), ticket.outcome_mut()).await {
        // The row as the table will hold it, folded as its events were appended.
        Ok(outcome) => Ok(json_response(StatusCode::OK, &RunView::from(&outcome?.run))),
        Err(_) => Ok(running),
    }
}

fn no_such_run(run_id: RunId) -> ApiError {
    ApiError::new(ErrorCode::UnknownRun, format!("no run {run_id}"))
}

/// Waits (briefly) for the table to apply run `run_id`'s last event when
/// the row it has is missing or older (`known`: the row's last position),
/// so a client reads what it was told (a run answered `succeeded` is not
/// then read as `running`). Returns whether it waited: read the row again.
async fn wait_for_table(
    state: &AppState,
    run_id: RunId,
    known: Option<Position>,
) -> Result<bool, ApiError> {
    let last = state
        .store
        .read_stream(&run_id.stream(), Direction::Backwards, ReadFrom::End, 1)
        .await?;
    let Some(last) = last.first() else {
        return Ok(false);
    };
    if known.is_some_and(|known| known >= last.position) {
        return Ok(false);
    }
    let mut rx = state.checkpoints.clone();
    // The checkpoint is exclusive: past the run's last event.
    let _ = tokio::time::timeout(
        READ_YOUR_WRITES,
        crate::service::applied_up_to(&*state.store, &mut rx, last.position.next()),
    )
    .await;
    Ok(true)
}

/// `GET /v1/runs/{run_id}`.
#[utoipa::path(
    get,
    path = "/v1/runs/{run_id}",
    tag = "runs",
    summary = "A run with its steps",
    params(("run_id" = String, Path, format = Uuid, description = "The run's id (a UUID); anything else is 400.")),
    responses(
        (status = 200, description = "The run, with its child runs (`children`, oldest first).", body = RunDetailView<'static>),
        (status = 400, description = "A bad or unknown query parameter, or a `run_id` that is not a UUID: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such run: `unknown_run`.", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn get_run(
    PathRunId(run_id): PathRunId,
    _: Query<NoParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let lookup = |state: &web::Data<AppState>| {
        let path = state.projection_path.clone();
        web::block(move || RunQueries::open(path)?.get(run_id))
    };
    let mut detail = lookup(&state).await??;
    let current = detail.as_ref().filter(|d| d.run.is_finished());
    if current.is_none() {
        let known = detail.as_ref().map(|d| d.run.last_position);
        if wait_for_table(&state, run_id, known).await? {
            detail = lookup(&state).await??;
        }
    }
    let detail = detail.ok_or_else(|| no_such_run(run_id))?;
    Ok(json_response(StatusCode::OK, &RunDetailView::from(&detail)))
}

/// `GET /v1/runs/{run_id}/events`.
#[utoipa::path(
    get,
    path = "/v1/runs/{run_id}/events",
    tag = "runs",
    summary = "A run's events",
    params(("run_id" = String, Path, format = Uuid, description = "The run's id (a UUID); anything else is 400.")),
    responses(
        (status = 200, description = "The run's events, oldest first.", body = EventsPage<'static>),
        (status = 400, description = "A bad or unknown query parameter, or a `run_id` that is not a UUID: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such run: `unknown_run`.", body = ErrorBody<'static>),
        (status = 410, description = "The run's events were archived out of the live log; the message says where: `archived`.", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn run_events(
    PathRunId(run_id): PathRunId,
    _: Query<NoParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    let events = events
        .iter()
        .map(|e| EventView::new(&state.codec, e))
        .collect();
    Ok(json_response(StatusCode::OK, &EventsPage { events }))
}

/// `POST /v1/runs/{run_id}/cancel`, with an optional `{"reason": ..}`:
/// 202 once the run's cancellation is signalled; 404 for an unknown run,
/// 409 (with its status) for one that already ended.
#[utoipa::path(
    post,
    path = "/v1/runs/{run_id}/cancel",
    tag = "runs",
    summary = "Cancel a run",
    params(("run_id" = String, Path, format = Uuid, description = "The run's id (a UUID); anything else is 400.")),
    request_body(content = Option<CancelBody>, content_type = "application/json",
        description = "Optional: none, `null`, or `{\"reason\": \"...\"}`."),
    responses(
        (status = 202, description = "The cancellation is signalled; the run ends `failed` with kind `cancelled` once its steps have recorded theirs.", body = Cancelling),
        (status = 400, description = "A bad query parameter or `run_id`, malformed JSON, or a bad or unknown field: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such run: `unknown_run`.", body = ErrorBody<'static>),
        (status = 409, description = "The run already ended (`run_finished`, with its `status`), or the log moved on under the write (`conflict`).", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn cancel_run(
    PathRunId(run_id): PathRunId,
    _: Query<NoParams>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reason = cancel_reason(&body)?;
    state
        .orchestrator
        .send(CancelRun { run_id, reason })
        .await
        .map_err(|_| ApiError::shutting_down())??;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &Cancelling {
            run_id: run_id.to_string(),
            status: "cancelling",
        },
    ))
}

/// `POST /v1/runs/{run_id}/steps` with `{"step", "connector", "operation",
/// "input", "attempt"?}`: a step of the run's running attempt, for an agent
/// served over HTTP. 200 with the step's output (executed now, or replayed
/// when an earlier attempt finished it); 502 `step_failed` with its `kind`
/// and `retryable`; 409 when no attempt of the run runs here, or the
/// caller's is over. Authorized by the attempt's `steps_token` (or the
/// service's token).
#[utoipa::path(
    post,
    path = "/v1/runs/{run_id}/steps",
    tag = "runs",
    summary = "Call a step (agents served over HTTP)",
    description = "Calls a connector as a journaled step of the run's running attempt: a step an \
        earlier attempt finished answers its recorded outcome without calling the vendor again; \
        a step in doubt is not resent. Send `Authorization: Bearer <steps_token>` (the token \
        POSTed to the agent with the attempt) or the service's token.",
    params(("run_id" = String, Path, format = Uuid, description = "The run's id (a UUID); anything else is 400.")),
    request_body(content = StepBody, content_type = "application/json",
        description = "`application/json` or `application/*+json`, UTF-8, not content-encoded."),
    responses(
        (status = 200, description = "The step's output.", body = StepDone),
        (status = 400, description = "A bad query parameter or `run_id`, malformed JSON, a key given twice, or a bad, missing or unknown field: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or one that is neither the attempt's steps token nor the service's: `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such connector: `unknown_connector`.", body = ErrorBody<'static>),
        (status = 408, description = "The body did not arrive whole within the body timeout: `request_timeout`.", body = ErrorBody<'static>),
        (status = 409, description = "No attempt of the run runs on this node (`run_not_running`), or the caller's attempt is over (`attempt_over`).", body = ErrorBody<'static>),
        (status = 413, description = "The body is over the limit: `too_large`.", body = ErrorBody<'static>),
        (status = 415, description = "Not JSON, not UTF-8, or content-encoded: `unsupported_media_type`.", body = ErrorBody<'static>),
        (status = 502, description = "The step failed (or an earlier attempt's failure replayed): `step_failed`, with the error's `kind` and whether it is `retryable`.", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn call_step(
    PathRunId(run_id): PathRunId,
    _: Query<NoParams>,
    req: HttpRequest,
    _: Accepting,
    _: JsonMediaType,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = super::auth::step_caller(&req, state.token.as_ref())?;
    let StepRequest {
        step,
        connector,
        operation,
        input,
        attempt,
    } = StepRequest::from_json(body.0)?;
    let call = CallStep {
        run_id,
        attempt,
        token,
        key: step.clone(),
        connector,
        operation,
        input,
    };
    let output = match state.orchestrator.send(call).await {
        Err(_) => return Err(ApiError::shutting_down()),
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(match e {
                StepCallError::NotRunning(_) => {
                    ApiError::new(ErrorCode::RunNotRunning, e.to_string())
                }
                StepCallError::AttemptOver { .. } => {
                    ApiError::new(ErrorCode::AttemptOver, e.to_string())
                }
                StepCallError::WrongToken(_) => ApiError::unauthorized(
                    "wrong bearer token: send the steps_token of the running attempt",
                ),
                StepCallError::UnknownConnector(_) => {
                    ApiError::new(ErrorCode::UnknownConnector, e.to_string())
                }
                StepCallError::Failed(call) => ApiError::step_failed(
                    call.message().to_owned(),
                    call.kind().to_string(),
                    call.is_retryable(),
                ),
                _ => ApiError::internal(e),
            });
        }
    };
    Ok(json_response(StatusCode::OK, &StepDone { step, output }))
}

/// `POST /v1/runs/{run_id}/steps/{key}/resolve` with `{"outcome":
/// "sent"|"not_sent", "decided_by": .., "reason"?: ..}`: 202 once the
/// decision is recorded and the run resumed; 404 for an unknown run or step
/// (naming the run's steps), 409 for a step not in doubt.
#[utoipa::path(
    post,
    path = "/v1/runs/{run_id}/steps/{key}/resolve",
    tag = "runs",
    summary = "Resolve a step in doubt",
    description = "Records an operator's finding about a step that ended in doubt (it may or may \
        not have reached the vendor) and resumes the run with a new attempt.",
    params(("run_id" = String, Path, format = Uuid, description = "The run's id (a UUID); anything else is 400."), ("key" = String, Path, description = "The step's key, as the run's child run records it.")),
    request_body(content = ResolveBody, content_type = "application/json",
        description = "`application/json` or `application/*+json`, UTF-8, not content-encoded."),
    responses(
        (status = 202, description = "The decision is recorded and the run resumed with a new attempt.", body = Resolved),
        (status = 400, description = "A bad query parameter or `run_id`, malformed JSON, a key given twice, or a bad, missing or unknown field: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such run (`unknown_run`), or no such step (`unknown_step`, naming the run's steps).", body = ErrorBody<'static>),
        (status = 408, description = "The body did not arrive whole within the body timeout: `request_timeout`.", body = ErrorBody<'static>),
        (status = 409, description = "The step did not end in doubt (`step_not_in_doubt`), the run already ended (`run_finished`), each with its `status`; or the log moved on under the write (`conflict`).", body = ErrorBody<'static>),
        (status = 413, description = "The body is over the limit: `too_large`.", body = ErrorBody<'static>),
        (status = 415, description = "Not JSON, not UTF-8, or content-encoded: `unsupported_media_type`.", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn resolve_step(
    PathRunId(run_id): PathRunId,
    _: Query<NoParams>,
    req: HttpRequest,
    _: Accepting,
    _: JsonMediaType,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let step = req.match_info().get("key").unwrap_or_default().to_owned();
    let Resolution {
        outcome,
        decided_by,
        reason,
    } = Resolution::from_json(body.0)?;
    let resolve = ResolveStep {
        run_id,
        step: step.clone(),
        outcome,
        decided_by,
        reason,
    };
    let attempt = match state.orchestrator.send(resolve).await {
        Err(_) => return Err(ApiError::shutting_down()),
        Ok(Err(neonhub_actors::Error::UnknownStep { run_id, step })) => {
            let steps = step_keys(&state, run_id).await?;
            return Err(ApiError::new(
                ErrorCode::UnknownStep,
                unknown_step_message(run_id, &step, &steps),
            ));
        }
        Ok(result) => result?,
    };
    Ok(json_response(
        StatusCode::ACCEPTED,
        &Resolved {
            run_id: run_id.to_string(),
            step,
            outcome: outcome.as_str(),
            attempt,
            status: RunStatus::Running,
        },
    ))
}

/// The step keys of run `run_id`'s steps, oldest first: its child runs in
/// the table, each key read from the child's `RunStarted`.
async fn step_keys(state: &AppState, run_id: RunId) -> Result<Vec<String>, ApiError> {
    let path = state.projection_path.clone();
    let children = web::block(move || RunQueries::open(path)?.get(run_id))
        .await??
        .map(|detail| detail.children)
        .unwrap_or_default();
    let mut keys = Vec::with_capacity(children.len());
    for child in children {
        let first = state
            .store
            .read_stream(
                &child.run_id.stream(),
                Direction::Forwards,
                ReadFrom::Start,
                1,
            )
            .await?;
        if let Some(Ok(RunEvent::Started(started))) = first.first().map(|e| state.codec.decode(e)) {
            keys.extend(started.step);
        }
    }
    Ok(keys)
}

/// What a client is told about a step key the run does not have.
pub(crate) fn unknown_step_message(run_id: RunId, step: &str, steps: &[String]) -> String {
    if steps.is_empty() {
        format!("run {run_id} has no step {step:?}: it has no steps")
    } else {
        format!(
            "run {run_id} has no step {step:?}; its steps are: {}",
            steps.join(", ")
        )
    }
}

/// The filter and page size of `GET /v1/runs`.
fn run_filter(params: ListParams) -> (RunFilter, usize) {
    let mut filter = RunFilter::new();
    if let Some(agent) = params.agent {
        filter = filter.target(agent);
    }
    if let Some(kind) = params.kind {
        filter = filter.kind(kind);
    }
    if let Some(status) = params.status {
        filter = filter.status(status);
    }
    if let Some(intent) = params.intent {
        filter = filter.intent(intent);
    }
    if let Some(kind) = params.error_kind {
        filter = filter.error_kind(kind);
    }
    if let Some(correlation) = params.correlation {
        filter = filter.correlation_id(correlation);
    }
    filter = filter.started_between(params.since, params.until);
    let limit = params.limit.map_or(DEFAULT_LIMIT, |l| l.0);
    (filter, usize::try_from(limit).unwrap_or(usize::MAX))
}

/// `GET /v1/runs`.
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    summary = "List runs",
    description = "Runs newest first, filtered; a page at a time (`next_cursor`).",
    params(ListParams),
    responses(
        (status = 200, description = "A page of runs, newest first.", body = RunsPage<'static>),
        (status = 400, description = "A bad or unknown query parameter (a cursor this API did not hand out, say): `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn list_runs(
    Query(mut params): Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cursor = params.cursor.take();
    let sort = params.sort.take().unwrap_or_default();
    let (filter, limit) = run_filter(params);
    let path = state.projection_path.clone();
    let page =
        web::block(move || RunQueries::open(path)?.list_sorted(&filter, sort, cursor, limit))
            .await??;
    Ok(json_response(
        StatusCode::OK,
        &RunsPage {
            runs: page.runs.iter().map(RunView::from).collect(),
            next_cursor: page.next.map(|c| c.to_string()),
        },
    ))
}

/// `GET /v1/reports/agents`.
#[utoipa::path(
    get,
    path = "/v1/reports/agents",
    tag = "reports",
    summary = "Figures per agent and connector",
    params(ReportParams),
    responses(
        (status = 200, description = "Each agent's and connector's runs, success rate and latency percentiles over the runs started in the window.", body = AgentsReport<'static>),
        (status = 400, description = "A bad or unknown query parameter: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn report(
    Query(params): Query<ReportParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ReportParams { since, until } = params;
    let path = state.projection_path.clone();
    let reports = web::block(move || RunQueries::open(path)?.report(since, until)).await??;
    Ok(json_response(
        StatusCode::OK,
        &AgentsReport {
            agents: reports.iter().map(ReportView::from).collect(),
        },
    ))
}

/// `GET /v1/runs/{id}/tree`: every run of the request `{id}` names (a run
/// id, whose correlation is taken, or a correlation id), in first-position
/// order, as rows of `GET /v1/runs`; at most 10,000 runs (and 32 MiB of
/// run text), with `truncated: true` past that. 404 `not_found` when
/// `{id}` is neither.
#[utoipa::path(
    get,
    path = "/v1/runs/{run_id}/tree",
    tag = "runs",
    summary = "Every run of one request",
    params(("run_id" = String, Path, format = Uuid, description = "A run's id (its correlation is taken) or a correlation id (a UUID); anything else is 400.")),
    responses(
        (status = 200, description = "The request's runs in first-position order, as rows of `GET /v1/runs`; at most 10,000 runs and 32 MiB of run text, with `truncated: true` past that.", body = RunTreeView<'static>),
        (status = 400, description = "A query parameter (this route takes none), or an id that is not a UUID: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No run and no correlation with this id: `not_found`.", body = ErrorBody<'static>),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn run_tree(
    PathRunId(id): PathRunId,
    _: Query<NoParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let uuid = *id.as_uuid();
    let path = state.projection_path.clone();
    let tree = web::block(move || RunQueries::open(path)?.tree(uuid))
        .await??
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no run and no correlation {uuid} in the AgentRun table"),
            )
        })?;
    Ok(json_response(StatusCode::OK, &RunTreeView::from(&tree)))
}

/// `GET /v1/reports/timeline?since=&until=&by=hour|day&agent=&kind=`: runs,
/// failures and p50/p95/p99 per bucket of start time, oldest first, every
/// bucket of the window (empty ones zero); `until` defaults to now, `since`
/// to a day (by hour) or 30 days (by day) before it. A window of more than
/// 1000 buckets is a 400 saying to narrow it.
#[utoipa::path(
    get,
    path = "/v1/reports/timeline",
    tag = "reports",
    summary = "Runs, failures and percentiles over time",
    params(TimelineParams),
    responses(
        (status = 200, description = "Every bucket of the window, oldest first (empty ones with zeros and no percentiles).", body = TimelineView),
        (status = 400, description = "A bad or unknown query parameter, or a window of more than 1000 buckets: `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Draining (`shutting_down`) or the store is unreachable for now (`unavailable`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn timeline(
    Query(params): Query<TimelineParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = params.by.unwrap_or(TimelineBy::Hour);
    let mut query = Timeline::window(by, params.since, params.until);
    if let Some(agent) = params.agent {
        query = query.target(agent);
    }
    if let Some(kind) = params.kind {
        query = query.kind(kind);
    }
    let path = state.projection_path.clone();
    let buckets = web::block(move || RunQueries::open(path)?.timeline(&query)).await??;
    Ok(json_response(
        StatusCode::OK,
        &TimelineView::new(by, &buckets),
    ))
}

/// `GET /v1/agents`.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "runs",
    summary = "The agents and connectors",
    responses(
        (status = 200, description = "The agents with the intents they take, the connectors with their modes, each with how often its actor restarted after a panic.", body = CatalogView<'static>),
        (status = 400, description = "A query parameter (this route takes none): `invalid_request`.", body = ErrorBody<'static>),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Shutting down (`shutting_down`); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn agents(
    _: Query<NoParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agents = state
        .orchestrator
        .send(ListAgents)
        .await
        .map_err(|_| ApiError::shutting_down())?;
    let connectors = state
        .orchestrator
        .send(ListConnectors)
        .await
        .map_err(|_| ApiError::shutting_down())?;
    Ok(json_response(
        StatusCode::OK,
        &CatalogView::new(&state.catalog, &agents, &connectors),
    ))
}

/// `GET /metrics`: the projection's run metrics and the live operational ones.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The run, projection and HTTP metrics in the Prometheus text format.",
         content_type = "text/plain", body = String),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
    ),
)]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.run_metrics.render();
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    let checkpoint = *state.checkpoints.borrow();
    if let Ok(head) = state.store.head().await {
        text.push_str(&state.health.render(checkpoint, head));
    }
    text.push_str(&telemetry::render());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    security(()),
    responses(
        (status = 200, description = "The process answers.", body = Health),
    ),
)]
pub(crate) async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &Health { status: "ok" })
}

/// `GET /readyz`: ready while the projection follows the log, the log's
/// writes succeed, and the service is not shutting down; else 503 saying
/// why (failing writes or a busy table: `unavailable`; a projection ahead
/// of the log or stopped: `projection_stopped`, with what to do).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    responses(
        (status = 200, description = "Ready: the projection follows the log and the log takes writes.", body = Ready),
        (status = 401, description = "No bearer token, or a wrong one (when the server has one configured): `unauthorized`.", body = ErrorBody<'static>,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 503, description = "Not ready: draining (`shutting_down`), the log's writes failing or the table busy (`unavailable`), or the projection stopped (`projection_stopped`, saying what to do); retry after `Retry-After` seconds.", body = ErrorBody<'static>,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::shutting_down());
    }
    if let Err(reason) = state.store.write_health() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("the event log's writes are failing (retried with each append): {reason}"),
        ));
    }
    match state.health.state() {
        ProjectionState::Following => {}
        ProjectionState::Retrying { .. } => {
            let problem = state.health.problem().unwrap_or_default();
            return Err(ApiError::new(ErrorCode::Unavailable, problem));
        }
        _ => {
            let problem = state.health.problem().unwrap_or_default();
            return Err(ApiError::new(ErrorCode::ProjectionStopped, problem));
        }
    }
    if state.checkpoints.has_changed().is_err() {
        return Err(ApiError::new(
            ErrorCode::ProjectionStopped,
            "the projection runner has stopped; see the service log",
        ));
    }
    let checkpoint: Position = *state.checkpoints.borrow();
    let head = state.store.head().await?;
    Ok(json_response(
        StatusCode::OK,
        &Ready {
            status: "ready",
            checkpoint: checkpoint.0,
            head: head.0,
        },
    ))
}

/// The route table's methods, each with its path as a pattern.
static ROUTE_PATTERNS: LazyLock<Vec<(&str, ResourceDef)>> = LazyLock::new(|| {
    super::ROUTES
        .iter()
        .map(|&(method, path)| (method, ResourceDef::new(path)))
        .collect()
});

/// Anything else: a JSON 405 with `Allow` for a path of the route table
/// with another method (RFC 9110, 15.5.6), else a JSON 404.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    let mut allowed = Vec::new();
    for (method, pattern) in ROUTE_PATTERNS.iter() {
        if pattern.is_match(req.path()) {
            let method = method.to_ascii_uppercase();
            if method == "GET" {
                allowed.push("HEAD".to_owned());
            }
            allowed.push(method);
        }
    }
    if allowed.is_empty() {
        return ApiError::new(
            ErrorCode::NotFound,
            format!("no route {} {}", req.method(), req.path()),
        )
        .error_response();
    }
    allowed.sort();
    allowed.dedup();
    let allow = allowed.join(", ");
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} {} is not served: it takes {allow}",
            req.method(),
            req.path()
        ),
    )
    .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use actix_web::error::JsonPayloadError;
    use neonhub_actors::Target;

    use super::*;

    /// Parses a body as `POST /v1/runs` does: actix-web reads the JSON
    /// (its errors mapped by the `JsonConfig`), then [`NewRun::from_json`].
    fn parse_new_run(body: &[u8]) -> Result<NewRun, ApiError> {
        let value = serde_json::from_slice(body)
            .map_err(|e| super::super::body::json_error(JsonPayloadError::Deserialize(e)))?;
        NewRun::from_json(value)
    }

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
