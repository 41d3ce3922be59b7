//! `POST /runs/{id}/rerun`: a new run with the input of an earlier one,
//! from its start, or from one of its steps reusing the recorded outputs of
//! the steps before it (and, optionally, a new input for that step).

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::bodies::{ErrorBody, Rerun as Answer};
use super::error::ApiError;
use super::extract::Path;
use super::state::{Admission, Rerun, State};
use crate::executor::{RunInput, StepRecord};
use crate::store::{DerivedFrom, StepEntry};

/// The body of a rerun: both fields optional.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RerunBody {
    /// The step path to run from (durable stores only); none: the start.
    from: Option<String>,
    /// A new input for the step at `from`.
    #[schema(value_type = Option<serde_json::Value>)]
    input: Option<Box<RawValue>>,
}

/// Reruns run `id`: a new run with its input, from its start or from one
/// of its steps.
#[utoipa::path(post, path = "/runs/{id}/rerun", tag = "runs",
    params(("id" = String, Path, description = "The run to rerun")),
    request_body(content = Option<RerunBody>, content_type = "application/json",
        description = "Optional (none, or `null`: from the start): `from` a step path, reusing the recorded outputs of the steps before it; `input` for that step"),
    responses(
        (status = 202, description = "The new run is accepted", body = Answer),
        (status = 400, description = "`bad-request`: a body that is not a rerun, `input` without `from`, a step the run does not have", body = ErrorBody),
        (status = 404, description = "`not-found`: no such run", body = ErrorBody),
        (status = 409, description = "`conflict`: the run's flow is no longer loaded, the run has not finished, or the store keeps no step outputs", body = ErrorBody),
        (status = 413, description = "`too-large`: the body is over 2 MiB", body = ErrorBody),
        (status = 429, description = "`queue-full`: the run queue is full", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`shutting-down` or `unavailable` (the store failed; nothing was done)", body = ErrorBody),
    ))]
pub(super) async fn rerun_run(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    let body = body.map_err(super::extract::body_refused)?;
    // No body, or `null`: from the start, with the same input.
    let body: RerunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerunBody::default()
    } else {
        serde_json::from_slice::<Option<RerunBody>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("the rerun body: {e}")))?
            .unwrap_or_default()
    };
    if body.input.is_some() && body.from.is_none() {
        return Err(ApiError::BadRequest(
            "`input` replaces the input of the step at `from`: give `from` too".into(),
        ));
    }
    let source = state
        .store
        .replay_source(&id)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e}; nothing was done")))?;
    let Some((old, entries)) = source else {
        return Err(ApiError::NotFound(format!("no run `{id}`")));
    };
    let flow = state.flow(&old.flow).ok_or_else(|| {
        ApiError::Conflict(format!(
            "run `{id}` is of flow `{}`, which is no longer loaded",
            old.flow
        ))
    })?;
    let journaled = match &body.from {
        None => Vec::new(),
        Some(from) => {
            if !state.store.durable() {
                return Err(ApiError::Conflict(
                    "the memory store keeps no step outputs: rerun from the start, or serve with a durable --store".into(),
                ));
            }
            let record = state
                .store
                .run(&id)
                .await
                .map_err(|e| ApiError::Unavailable(format!("{e}; nothing was done")))?
                .and_then(|r| r.record)
                .ok_or_else(|| {
                    ApiError::Conflict(format!(
                        "run `{id}` has not finished: rerun it from a step once it has"
                    ))
                })?;
            before(&record.steps, entries, from)
                .ok_or_else(|| ApiError::BadRequest(format!("run `{id}` has no step `{from}`")))?
        }
    };
    let input = RunInput::from_raw(old.input);
    let rerun = Rerun {
        from: DerivedFrom {
            run_id: id.clone(),
            step: body.from.clone(),
        },
        journaled,
        input_at: body.from.clone().zip(body.input),
    };
    let admission = Admission {
        flow,
        input,
        refused: None,
        key: None,
        rerun: Some(rerun),
    };
    let (run_id, _) = match state.admit(vec![admission], 0).await {
        Ok(mut runs) => runs.remove(0),
        Err(refusal) => return Err(super::api::refused(&state, refusal)),
    };
    let answer = Answer {
        run_id,
        status: crate::executor::RunStatus::Queued,
        derived_from: DerivedFrom {
            run_id: id,
            step: body.from,
        },
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// The journal entries of the steps that started before the step at `from`
/// (and are not inside it); `None` when the run has no such step.
fn before(steps: &[StepRecord], entries: Vec<StepEntry>, from: &str) -> Option<Vec<StepEntry>> {
    let at = steps.iter().find(|s| s.path == from)?.start_ms;
    let inside = |path: &str| {
        path == from
            || path
                .strip_prefix(from)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    Some(
        entries
            .into_iter()
            .filter(|e| e.record.start_ms < at && !inside(&e.path))
            .collect(),
    )
}

impl State {
    /// Journals the entries a rerun reuses under its own id, so that a
    /// crash of the rerun does not run them again; returns them.
    pub(super) async fn reuse(&self, run_id: &str, entries: Vec<StepEntry>) -> Vec<StepEntry> {
        for entry in &entries {
            if let Err(e) = self.store.journal(run_id, entry.clone()).await {
                tracing::warn!(run = %run_id, step = %entry.path, error = %e, "the store could not journal a reused step");
            }
        }
        entries
    }
}
