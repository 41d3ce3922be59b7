//! The HTTP API (JSON). Errors are [`ApiError`]s, answered as
//! `{"error": {"kind", "message", "step"}}` with a fitting status code;
//! every response about a run carries its id in the `x-flowhost-run-id`
//! header.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::bodies::{
    Cancelling, ErrorBody, Finished, FlowEntry, FlowList, Health, PluginList, Published, Queued,
    RunBrief, RunPage, RunSummary, RunView,
};
use super::error::ApiError;
use super::events;
use super::extract::{BODY_LIMIT, Input, NamedFlow, Path, Query};
use super::health;
use super::state::{Admission, Lookup, Refusal, State};
use crate::executor::RunStatus;
use crate::store::{Cursor, ListQuery, MAX_PAGE, StoreError};

type S = Extract<Arc<State>>;
type Answer = Result<Response, ApiError>;

/// The header that carries a run's id (its correlation id in the logs).
pub(crate) const RUN_ID_HEADER: &str = "x-flowhost-run-id";

/// Every API route, each described by its handler's `#[utoipa::path]`: the
/// router and `/openapi.json` are built from this one list, so a route is
/// added here, never with `Router::route`.
pub(super) fn routes() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::new()
        .routes(routes!(list_flows))
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(super::rerun::rerun_run))
        .routes(routes!(list_plugins))
        .routes(routes!(publish_event))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(super::openapi::openapi_json))
}

pub(crate) fn router(state: Arc<State>) -> Router {
    app()
        .with_state(state.clone())
        .merge(crate::ui::router(state))
}

/// The API's router before its state: the routes, the fallbacks, the body
/// limit.
pub(super) fn app() -> Router<Arc<State>> {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// Why a run was not accepted, as the API answers it.
pub(super) fn refused(state: &State, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::QueueFull => ApiError::QueueFull {
            waiting: state.config.queue_capacity,
            retry_after_secs: state.config.retry_after_secs,
        },
        Refusal::ShuttingDown => ApiError::ShuttingDown,
        Refusal::Store(e) => store_failed(e),
    }
}

/// The store failed: the request did nothing.
fn store_failed(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "the store failed");
    ApiError::Unavailable(format!("{e}; nothing was done"))
}

/// The longest `Idempotency-Key` taken.
const MAX_KEY: usize = 255;

/// The `Idempotency-Key` header: printable ASCII, at most [`MAX_KEY`] bytes.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY} printable ASCII characters"
        ))
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty()
        || key.len() > MAX_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

fn with_run_id(mut r: Response, run_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(run_id) {
        r.headers_mut().insert(RUN_ID_HEADER, v);
    }
    r
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunQuery {
    /// `false`: answer `202` once the run is accepted, without waiting for
    /// it to finish (default `true`).
    wait: Option<bool>,
}

/// Starts a run of `flow` with the request body as its input.
#[utoipa::path(post, path = "/flows/{flow}/runs", tag = "runs",
    params(
        ("flow" = String, Path, description = "The flow's name (its file stem)"),
        RunQuery,
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$",
            description = "1 to 255 printable ASCII characters: the same key (per flow, within retention) answers the same run, never a second one"),
    ),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
        description = "The run's input: any JSON, checked against the flow's `input_schema`; an empty body is `{}`"),
    responses(
        (status = 200, description = "The run finished (waited for)", body = Finished,
            headers(("x-flowhost-run-id" = String, description = "The run's id"))),
        (status = 202, description = "The run is accepted (`wait=false`)", body = Queued,
            headers(("x-flowhost-run-id" = String, description = "The run's id"))),
        (status = 400, description = "`bad-json`: the body is not JSON; `bad-request`: a bad query, path or `Idempotency-Key`", body = ErrorBody),
        (status = 404, description = "`not-found`: no flow of that name", body = ErrorBody),
        (status = 413, description = "`too-large`: the body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "`invalid-input`: the input fails the flow's `input_schema` (step `input`)", body = ErrorBody),
        (status = 429, description = "`queue-full`: the run queue is full", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`shutting-down` or `unavailable` (the store failed; nothing was done)", body = ErrorBody),
    ))]
async fn start_run(
    Extract(state): S,
    NamedFlow(flow): NamedFlow,
    Query(q): Query<RunQuery>,
    headers: HeaderMap,
    body: Input,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let warnings = body.warnings();
    let Input(mut input) = body;
    input.check(&flow)?;
    let admission = Admission {
        flow,
        input,
        refused: None,
        key,
        rerun: None,
    };
    let (run_id, mut done) = match state.admit(vec![admission], 0).await {
        Ok(mut runs) => runs.remove(0),
        Err(refusal) => return Err(refused(&state, refusal)),
    };
    if q.wait == Some(false) {
        let body = Queued {
            run_id: &run_id,
            status: RunStatus::Queued,
            warnings: &warnings,
        };
        let r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
        return Ok(with_run_id(r, &run_id));
    }
    let record = match done.wait_for(Option::is_some).await {
        Ok(r) => r.clone(),
        Err(_) => None,
    };
    let record = match record {
        Some(record) => record,
        // Left to resume by a shutdown: the client asks again later.
        None => return Err(ApiError::ShuttingDown),
    };
    // The output goes out as the flow wrote it, without a parse.
    let body = Finished {
        run_id: &record.run_id,
        status: record.status,
        output: record.output.as_deref(),
        error: record.error.as_ref(),
        warnings: &warnings,
    };
    Ok(with_run_id(
        (StatusCode::OK, axum::Json(body)).into_response(),
        &run_id,
    ))
}

/// A run: its record once finished, its status before.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run record (or, before it finishes, its id, flow and status)", body = RunView,
            headers(("x-flowhost-run-id" = String, description = "The run's id"))),
        (status = 400, description = "`bad-request`: a path that cannot be read", body = ErrorBody),
        (status = 404, description = "`not-found`: no such run within the store's retention", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store failed", body = ErrorBody),
    ))]
async fn get_run(Extract(state): S, Path(id): Path<String>) -> Answer {
    let found = state.lookup(&id).await.map_err(store_failed)?;
    let body = match found {
        None => {
            let kept = if state.store.durable() {
                "within the store's retention"
            } else {
                "in memory, and only the most recent"
            };
            return Err(ApiError::NotFound(format!(
                "no run `{id}` (runs are kept {kept})"
            )));
        }
        Some(Lookup::Stored(run)) => match &run.record {
            Some(record) => axum::Json(RunView::Record(record)).into_response(),
            None => brief(&id, run.flow, run.status),
        },
        Some(Lookup::Live(flow, status)) => brief(&id, flow, status),
    };
    Ok(with_run_id(body, &id))
}

fn brief(id: &str, flow: String, status: RunStatus) -> Response {
    let run_id = id.to_string();
    axum::Json(RunView::Brief(RunBrief {
        run_id,
        flow,
        status,
    }))
    .into_response()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only runs of this flow.
    flow: Option<String>,
    /// Only runs with this status.
    status: Option<RunStatus>,
    /// Runs per page: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the page before.
    #[param(pattern = "^[0-9]{1,19}\\.[!-~]{1,64}$")]
    cursor: Option<String>,
}

/// Runs newest first, a page at a time (keyset pagination).
#[utoipa::path(get, path = "/runs", tag = "runs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of runs; `next` is the cursor of the following page", body = RunPage),
        (status = 400, description = "`bad-request`: a `limit` out of range, a `cursor` this server did not give, an unknown parameter", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store failed", body = ErrorBody),
    ))]
async fn list_runs(Extract(state): S, Query(p): Query<ListParams>) -> Answer {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to {MAX_PAGE}"
        )));
    }
    let cursor =
        match &p.cursor {
            None => None,
            Some(c) => Some(c.parse::<Cursor>().ok().ok_or_else(|| {
                ApiError::BadRequest("`cursor` is not one this server gave".into())
            })?),
        };
    let query = ListQuery {
        flow: p.flow,
        status: p.status,
        limit,
        cursor,
    };
    let page = state.store.list(query).await.map_err(store_failed)?;
    let runs = page
        .runs
        .into_iter()
        .map(|r| RunSummary {
            accepted_at: humantime::format_rfc3339_millis(r.accepted_at).to_string(),
            run_id: r.run_id,
            flow: r.flow,
            status: r.status,
        })
        .collect();
    let next = page.next.map(|c| c.to_string());
    Ok(axum::Json(RunPage { runs, next }).into_response())
}

/// Stops a run, its running guest calls included.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "The run is being cancelled", body = Cancelling,
            headers(("x-flowhost-run-id" = String, description = "The run's id"))),
        (status = 400, description = "`bad-request`: a path that cannot be read", body = ErrorBody),
        (status = 404, description = "`not-found`: no such run", body = ErrorBody),
        (status = 409, description = "`conflict`: the run already finished", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store failed", body = ErrorBody),
    ))]
async fn cancel_run(Extract(state): S, Path(id): Path<String>) -> Answer {
    // A fleet's waiter runs elsewhere (or nowhere yet): the store decides.
    let live = match state.is_waiter(&id) {
        true => None,
        false => state.cancel(&id),
    };
    let status = match live {
        Some(status) => Some(status),
        None => match state.lookup(&id).await.map_err(store_failed)? {
            Some(Lookup::Stored(run)) => {
                if let (None, Some(fleet)) = (&run.record, &state.fleet) {
                    state.cancel(&id);
                    state
                        .cancel_shared(fleet.as_ref(), &id, &run.flow)
                        .await
                        .map_err(store_failed)?;
                }
                Some(run.status)
            }
            _ => None,
        },
    };
    match status {
        None => Err(ApiError::NotFound(format!("no run `{id}`"))),
        Some(status @ (RunStatus::Queued | RunStatus::Running)) => {
            let body = Cancelling {
                run_id: &id,
                status,
                cancelling: true,
            };
            Ok(with_run_id(
                (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
                &id,
            ))
        }
        Some(status) => Err(ApiError::Conflict(format!(
            "run `{id}` already finished ({status})"
        ))),
    }
}

/// Every flow file, with its version and load error.
#[utoipa::path(get, path = "/flows", tag = "flows",
    responses((status = 200, description = "The flows", body = FlowList)))]
async fn list_flows(Extract(state): S) -> Response {
    let flows = state.flows.all();
    let statuses = state.flows.statuses().await;
    let flows = statuses
        .into_iter()
        .map(|s| {
            let flow = flows.get(&s.name);
            FlowEntry {
                flow: flow.map(|f| f.name.clone()),
                file: s.path.display().to_string(),
                version: s.version,
                hash: s.hash,
                loaded_at: s.loaded_at,
                error: s.error,
                steps: flow.map(|f| f.all_steps().len()),
                triggers: flow.map(|f| f.triggers.iter().map(|t| t.event.clone()).collect()),
                concurrency: flow.and_then(|f| f.concurrency),
                name: s.name,
            }
        })
        .collect();
    axum::Json(FlowList { flows }).into_response()
}

/// Every plugin file, with its version, hash, size, load time and error.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, description = "The plugins", body = PluginList)))]
async fn list_plugins(Extract(state): S) -> Response {
    let plugins = state.plugins.statuses().await;
    axum::Json(PluginList { plugins }).into_response()
}

/// Publishes an event: every flow with a matching trigger starts a run
/// with the body as its input.
#[utoipa::path(post, path = "/events/{topic}", tag = "events",
    params(("topic" = String, Path, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        description = "The topic, matched against the flows' `triggers`; no control characters")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json",
        description = "The event's payload: any JSON; an empty body is `{}`"),
    responses(
        (status = 202, description = "The runs it started (none when no flow is triggered)", body = Published),
        (status = 400, description = "`bad-json`: the body is not JSON; `bad-request`: a topic that is not one", body = ErrorBody),
        (status = 413, description = "`too-large`: the body is over 2 MiB", body = ErrorBody),
        (status = 429, description = "`queue-full`: the run queue is full", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`shutting-down` or `unavailable` (the store failed; nothing was done)", body = ErrorBody),
    ))]
async fn publish_event(Extract(state): S, Path(topic): Path<String>, body: Input) -> Answer {
    events::check_topic(&topic).map_err(ApiError::BadRequest)?;
    let warnings = body.warnings();
    let runs = events::publish(&state, &topic, body.0, 0)
        .await
        .map_err(|r| refused(&state, r))?;
    let answer = Published {
        topic: &topic,
        runs,
        warnings: &warnings,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// The metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String,
        content_type = "application/openmetrics-text")))]
async fn metrics(Extract(state): S) -> Response {
    let text = state.metrics_text();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Alive and not stalled. Open without a token.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses(
        (status = 200, description = "`ok`", body = Health),
        (status = 503, description = "`unhealthy`: the runtime is stalled", body = Health),
    ))]
async fn healthz(Extract(state): S) -> Response {
    health_answer(health::healthz(&state))
}

/// Loaded, not saturated, and a built-in probe step runs end to end.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ok` or `degraded` (serving, with problems)", body = Health),
        (status = 503, description = "`unhealthy`", body = Health),
    ))]
async fn readyz(Extract(state): S) -> Response {
    health_answer(health::readyz(&state).await)
}

fn health_answer(health: Health) -> Response {
    let code = match health.serving() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, axum::Json(health)).into_response()
}
