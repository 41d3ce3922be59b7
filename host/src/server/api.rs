//! The HTTP API (JSON). Errors are [`ApiError`]s, answered as
//! `{"error": {"kind", "message", "step"}}` with a fitting status code;
//! every response about a run carries its id in the `x-flowhost-run-id`
//! header.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::error::ApiError;
use super::events;
use super::extract::{BODY_LIMIT, Input, NamedFlow, Path, Query};
use super::health;
use super::state::{Admission, Lookup, Refusal, State};
use crate::executor::{RunError, RunStatus};
use crate::store::{Cursor, ListQuery, MAX_PAGE, StoreError};

type S = Extract<Arc<State>>;
type Answer = Result<Response, ApiError>;

/// The header that carries a run's id (its correlation id in the logs).
pub(crate) const RUN_ID_HEADER: &str = "x-flowhost-run-id";

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/flows", get(list_flows))
        .route("/flows/{flow}/runs", post(start_run))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/rerun", post(super::rerun::rerun_run))
        .route("/plugins", get(list_plugins))
        .route("/events/{topic}", post(publish_event))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::ui::router(state.clone()))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
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

#[derive(Deserialize)]
struct RunQuery {
    wait: Option<bool>,
}

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
        let r = (
            StatusCode::ACCEPTED,
            axum::Json(with_warnings(
                json!({"run_id": run_id, "status": "queued"}),
                &warnings,
            )),
        )
            .into_response();
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

/// The answer to a run that was waited for.
#[derive(Serialize)]
struct Finished<'a> {
    run_id: &'a str,
    status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RunError>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

/// `answer` with a `warnings` list, when there is anything to warn about.
fn with_warnings(mut answer: Value, warnings: &[String]) -> Value {
    if !warnings.is_empty() {
        answer["warnings"] = json!(warnings);
    }
    answer
}

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
        Some(Lookup::Stored(run)) if run.record.is_some() => {
            axum::Json(run.record.as_deref()).into_response()
        }
        Some(Lookup::Stored(run)) => {
            axum::Json(json!({"run_id": id, "flow": run.flow, "status": run.status}))
                .into_response()
        }
        Some(Lookup::Live(flow, status)) => {
            axum::Json(json!({"run_id": id, "flow": flow, "status": status})).into_response()
        }
    };
    Ok(with_run_id(body, &id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    flow: Option<String>,
    status: Option<RunStatus>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /runs`: runs newest first, a page at a time (keyset pagination).
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
    let runs: Vec<Value> = page
        .runs
        .iter()
        .map(|r| {
            json!({
                "run_id": r.run_id,
                "flow": r.flow,
                "status": r.status,
                "accepted_at": humantime::format_rfc3339_millis(r.accepted_at).to_string(),
            })
        })
        .collect();
    let next = page.next.map(|c| c.to_string());
    Ok(axum::Json(json!({"runs": runs, "next": next})).into_response())
}

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
            let body = json!({"run_id": id, "status": status, "cancelling": true});
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

async fn list_flows(Extract(state): S) -> Response {
    let flows = state.flows.all();
    let statuses = state.flows.statuses().await;
    let list: Vec<Value> = statuses
        .into_iter()
        .map(|s| {
            let flow = flows.get(&s.name);
            json!({
                "name": s.name,
                "flow": flow.map(|f| f.name.clone()),
                "file": s.path,
                "version": s.version,
                "hash": s.hash,
                "loaded_at": s.loaded_at,
                "error": s.error,
                "steps": flow.map(|f| f.all_steps().len()),
                "triggers": flow.map(|f| f.triggers.iter().map(|t| t.event.clone()).collect::<Vec<_>>()),
                "concurrency": flow.and_then(|f| f.concurrency),
            })
        })
        .collect();
    axum::Json(json!({ "flows": list })).into_response()
}

async fn list_plugins(Extract(state): S) -> Response {
    axum::Json(json!({ "plugins": state.plugins.statuses().await })).into_response()
}

async fn publish_event(Extract(state): S, Path(topic): Path<String>, body: Input) -> Answer {
    events::check_topic(&topic).map_err(ApiError::BadRequest)?;
    let warnings = body.warnings();
    let runs = events::publish(&state, &topic, body.0, 0)
        .await
        .map_err(|r| refused(&state, r))?;
    let answer = with_warnings(json!({"topic": topic, "runs": runs}), &warnings);
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

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

async fn healthz(Extract(state): S) -> Response {
    let (ok, body) = health::healthz(&state);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn readyz(Extract(state): S) -> Response {
    let (ok, body) = health::readyz(&state).await;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}
