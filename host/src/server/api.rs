//! The HTTP API (JSON). Errors are `{"error": {"kind", "message", "step"}}`
//! with a fitting status code; every response about a run carries its id in
//! the `x-flowhost-run-id` header.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::events;
use super::health;
use super::state::{Refusal, State};
use crate::executor::{RunInput, RunStatus};

type S = Extract<Arc<State>>;

/// The header that carries a run's id (its correlation id in the logs).
pub(crate) const RUN_ID_HEADER: &str = "x-flowhost-run-id";

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/flows", get(list_flows))
        .route("/flows/{flow}/runs", post(start_run))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/plugins", get(list_plugins))
        .route("/events/{topic}", post(publish_event))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

fn error(
    status: StatusCode,
    kind: &str,
    message: impl Into<String>,
    step: Option<&str>,
) -> Response {
    let body = json!({"error": {"kind": kind, "message": message.into(), "step": step}});
    (status, axum::Json(body)).into_response()
}

fn refused(state: &State, refusal: Refusal) -> Response {
    match refusal {
        Refusal::QueueFull => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "queue-full",
                format!(
                    "the run queue is full ({} runs waiting); try again later",
                    state.config.queue_capacity
                ),
                None,
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(state.config.retry_after_secs),
            );
            r
        }
        Refusal::ShuttingDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
            None,
        ),
    }
}

fn with_run_id(mut r: Response, run_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(run_id) {
        r.headers_mut().insert(RUN_ID_HEADER, v);
    }
    r
}

/// A request body as a run's input, read once; an empty body is `{}`.
fn json_body(body: Bytes) -> Result<RunInput, Box<Response>> {
    let bad = |message: String| Box::new(error(StatusCode::BAD_REQUEST, "bad-json", message, None));
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RunInput::from_value(json!({})));
    }
    let text = String::from_utf8(body.into()).map_err(|e| {
        bad(format!(
            "the request body is not valid JSON: not UTF-8: {e}"
        ))
    })?;
    RunInput::parse(text, "the request body").map_err(|e| bad(e.to_string()))
}

#[derive(Deserialize)]
struct RunQuery {
    wait: Option<bool>,
}

async fn start_run(
    Extract(state): S,
    Path(name): Path<String>,
    Query(q): Query<RunQuery>,
    body: Bytes,
) -> Response {
    let Some(flow) = state.flow(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no flow named `{name}`"),
            None,
        );
    };
    let input = match json_body(body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Err(e) = input.check(&flow) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            e.to_string(),
            Some("input"),
        );
    }
    let (run_id, mut done) = match state.admit(vec![(flow, Ok(input))], 0) {
        Ok(mut runs) => runs.remove(0),
        Err(refusal) => return refused(&state, refusal),
    };
    if q.wait == Some(false) {
        let r = (
            StatusCode::ACCEPTED,
            axum::Json(json!({"run_id": run_id, "status": "queued"})),
        )
            .into_response();
        return with_run_id(r, &run_id);
    }
    let record = match done.wait_for(Option::is_some).await {
        Ok(r) => r.clone(),
        Err(_) => None,
    };
    let Some(record) = record else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "host",
            "the run ended without a record",
            None,
        );
    };
    // The output goes out as the flow wrote it, without a parse.
    let body = Finished {
        run_id: &record.run_id,
        status: record.status,
        output: record.output.as_deref(),
        error: record.error.as_ref().map(
            |e| json!({"kind": e.kind, "message": e.message, "step": e.step, "causes": e.causes}),
        ),
    };
    with_run_id((StatusCode::OK, axum::Json(body)).into_response(), &run_id)
}

/// The answer to a run that was waited for.
#[derive(Serialize)]
struct Finished<'a> {
    run_id: &'a str,
    status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

async fn get_run(Extract(state): S, Path(id): Path<String>) -> Response {
    match state.lookup(&id) {
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no run `{id}` (runs are kept in memory, and only the most recent)"),
            None,
        ),
        Some((_, _, Some(record))) => with_run_id(axum::Json(&*record).into_response(), &id),
        Some((flow, status, None)) => with_run_id(
            axum::Json(json!({"run_id": id, "flow": flow, "status": status})).into_response(),
            &id,
        ),
    }
}

async fn cancel_run(Extract(state): S, Path(id): Path<String>) -> Response {
    match state.cancel(&id) {
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no run `{id}`"),
            None,
        ),
        Some(status @ (RunStatus::Queued | RunStatus::Running)) => {
            let body = json!({"run_id": id, "status": status, "cancelling": true});
            with_run_id(
                (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
                &id,
            )
        }
        Some(status) => error(
            StatusCode::CONFLICT,
            "conflict",
            format!("run `{id}` already finished ({status})"),
            None,
        ),
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

async fn publish_event(Extract(state): S, Path(topic): Path<String>, body: Bytes) -> Response {
    let payload = match json_body(body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match events::publish(&state, &topic, payload, 0) {
        Ok(runs) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"topic": topic, "runs": runs})),
        )
            .into_response(),
        Err(refusal) => refused(&state, refusal),
    }
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
