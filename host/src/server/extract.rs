//! The API's extractors: axum's, with their refusals answered as
//! [`ApiError`]s, and a run's input read once from the request body, with
//! the warnings its answer carries.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use super::error::ApiError;
use super::state::State;
use crate::executor::{InputError, RunInput};
use crate::flow::Flow;

/// The largest request body: a run's input or an event's payload.
pub(crate) const BODY_LIMIT: usize = 2 << 20;

/// A path parameter; a bad one answers `400 bad-request` in the API's shape.
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// The query string; a bad one answers `400 bad-request` in the API's shape.
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// The flow a `/flows/{flow}/...` path names, looked up before the body is
/// read: an unknown flow answers `404 not-found` whatever the body holds.
pub(crate) struct NamedFlow(pub(crate) Arc<Flow>);

impl FromRequestParts<Arc<State>> for NamedFlow {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state).await?;
        state
            .flow(&name)
            .map(NamedFlow)
            .ok_or_else(|| ApiError::NotFound(format!("no flow named `{name}`")))
    }
}

/// A request body that could not be read: over the size limit (`413
/// too-large`, naming the limit) or cut short (`400 bad-request`).
pub(crate) fn body_refused(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = bytesize::ByteSize(BODY_LIMIT as u64).display().iec();
        ApiError::TooLarge(format!("the request body is over the {limit} limit"))
    } else {
        ApiError::from(r)
    }
}

/// The request body as a run's input, read once: an empty body is `{}`;
/// one over the size limit answers `413 too-large`, one that is not JSON
/// `400 bad-json` with serde's line and column.
pub(crate) struct Input(pub(crate) RunInput);

impl<S: Send + Sync> FromRequest<S> for Input {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(body_refused)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(RunInput::from_value(serde_json::json!({}))));
        }
        let text = String::from_utf8(body.into()).map_err(|e| InputError::NotJson {
            origin: "the request body".into(),
            reason: format!("not UTF-8: {e}"),
        })?;
        Ok(Input(RunInput::parse(text, "the request body")?))
    }
}

impl Input {
    /// What the answer warns about: a body that is JSON but that expressions
    /// cannot read (a number beyond a double, nesting over 128 levels). The
    /// run still starts, and its first step gets the body as written, as
    /// `flowhost run --input` does with its warning on stderr.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.0
            .unreadable()
            .map(|reason| {
                format!(
                    "the request body: {reason}; steps get it as written, but expressions cannot read it"
                )
            })
            .into_iter()
            .collect()
    }
}
