//! The API's one error type. Every refusal, a handler's or an extractor's
//! (a body over the size limit, a bad path or query), answers
//! `{"error": {"kind", "message", "step"}}` with its status code.

use super::bodies::{ErrorBody, ErrorDetail};
use crate::executor::InputError;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request was refused.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No API token, or not this server's (401 `unauthorized`).
    Unauthorized(String),
    /// A cookie-carried change from another site (403 `forbidden`).
    Forbidden(String),
    /// No such flow, run or route (404 `not-found`).
    NotFound(String),
    /// A route called with a method it does not take (405
    /// `method-not-allowed`).
    MethodNotAllowed(String),
    /// A path or query the route does not take, or a body that cannot be
    /// read (400 `bad-request`).
    BadRequest(String),
    /// A body over the size limit (413 `too-large`).
    TooLarge(String),
    /// A run's input was refused: not JSON (400 `bad-json`), or not what
    /// the flow's `input_schema` asks (422 `invalid-input`, step `input`).
    Input(InputError),
    /// The run already finished (409 `conflict`).
    Conflict(String),
    /// The run queue is full (429 `queue-full`, with `Retry-After`).
    QueueFull {
        /// Runs waiting, the queue's capacity.
        waiting: usize,
        /// Seconds to wait before trying again.
        retry_after_secs: u64,
    },
    /// The server is shutting down (503 `shutting-down`).
    ShuttingDown,
    /// The store cannot be used now (503 `unavailable`).
    Unavailable(String),
    /// The server failed (500 `host`).
    Host(String),
}

impl ApiError {
    /// The status code and the kind word.
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            ApiError::Input(InputError::NotJson { .. }) => (StatusCode::BAD_REQUEST, "bad-json"),
            ApiError::Input(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue-full"),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Host(_) => (StatusCode::INTERNAL_SERVER_ERROR, "host"),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::NotFound(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::BadRequest(m)
            | ApiError::TooLarge(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m)
            | ApiError::Host(m) => m.clone(),
            ApiError::Input(e) => e.to_string(),
            ApiError::QueueFull { waiting, .. } => {
                format!("the run queue is full ({waiting} runs waiting); try again later")
            }
            ApiError::ShuttingDown => "the server is shutting down".into(),
        }
    }

    /// The step the error is about: `input` for an input the schema refused.
    fn step(&self) -> Option<&'static str> {
        match self {
            ApiError::Input(InputError::NotJson { .. }) => None,
            ApiError::Input(_) => Some("input"),
            _ => None,
        }
    }

    /// An extractor's refusal, in its own words.
    fn rejected(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
            s if s.is_server_error() => ApiError::Host(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        let error = ErrorDetail {
            kind,
            message: self.message(),
            step: self.step(),
        };
        let mut response = (status, axum::Json(ErrorBody { error })).into_response();
        if let ApiError::QueueFull {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::Input(e)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError::rejected(
            r.status(),
            format!("the request body cannot be read: {}", r.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::rejected(r.status(), r.body_text())
    }
}
