//! The host-wide keep-alive pool every call's outbound requests share.
//!
//! One hyper-util client per [`Host`](crate::Host), keyed by scheme, host
//! and port: a request takes an idle connection to its target if there is
//! one, else dials a new one; a finished response puts the connection back,
//! up to `http_max_idle_per_host` idle ones per target, each closed after
//! `http_idle_timeout` unused. With no idle connections allowed, every
//! request dials its own and closes it.
//!
//! Nothing here outlives its call: wasi-http runs each request on a task
//! the call's store aborts when it is dropped (at the call's end or its
//! deadline), a connect is bounded by the call's deadline, and a
//! connection whose response was abandoned mid-way is closed, not pooled.

use std::error::Error as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::connect::{CONNECT_BY, ConnectError, Connector, tls_config};
use crate::error::SetupError;

/// What wasi-http waits when a request sets no timeout of its own, as its
/// default sender does; the call's deadline bounds every wait anyway.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The pool's settings, from [`Config`](crate::Config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    /// Idle connections kept per host and port; 0 turns pooling off.
    pub(crate) max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub(crate) idle_timeout: Duration,
}

/// The host's outbound connection pool. Cheap to clone; clones share it.
#[derive(Clone)]
pub(crate) struct HttpPool {
    client: Client<Connector, WasiBody>,
}

impl HttpPool {
    pub(crate) fn new(settings: PoolSettings) -> Result<Self, SetupError> {
        let tls = tls_config()
            .map_err(|e| SetupError(format!("cannot set up TLS for outbound HTTP: {e}")))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .pool_idle_timeout(settings.idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(Connector::new(tls));
        Ok(HttpPool { client })
    }

    /// Sends `request` (its URI already the checked target) and returns the
    /// response with its body bounded by the between-bytes timeout. The
    /// connect is bounded by `options`' connect timeout and by `deadline`;
    /// the response head by the connect and first-byte timeouts together.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        deadline: Instant,
    ) -> Result<http::Response<WasiBody>, Error> {
        let options = options.unwrap_or_default();
        let connect = options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT);

        let connect_by = crate::duration::after(Instant::now(), connect).min(deadline);
        let head = CONNECT_BY.scope(connect_by, self.client.request(request));
        let response = tokio::time::timeout(connect.saturating_add(first_byte), head)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(|e| client_error(&e))?;
        Ok(response.map(|incoming| {
            BetweenBytes::new(incoming, between_bytes)
                .map_err(hyper_error)
                .boxed_unsync()
        }))
    }
}

/// A response body that fails with `connection-read-timeout` when no frame
/// arrives for `gap`.
struct BetweenBytes {
    incoming: Incoming,
    gap: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl BetweenBytes {
    fn new(incoming: Incoming, gap: Duration) -> Self {
        BetweenBytes {
            incoming,
            gap,
            timer: Box::pin(tokio::time::sleep(gap)),
        }
    }
}

/// A body error: hyper's, or the gap between frames running out.
enum BodyError {
    Hyper(hyper::Error),
    Gap,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.gap;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Gap)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

fn hyper_error(e: BodyError) -> Error {
    match e {
        BodyError::Gap => Error::ConnectionReadTimeout,
        BodyError::Hyper(e) if e.is_timeout() => Error::HttpResponseTimeout,
        BodyError::Hyper(e) => Error::Hyper(e),
    }
}

/// The guest's `error-code` for a failed request: the connector's reason, a
/// request body's own error, or what hyper saw on the connection.
fn client_error(e: &hyper_util::client::legacy::Error) -> Error {
    let mut seen_hyper = None;
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectError>() {
            return connect_error(connect);
        }
        if let Some(code) = cause.downcast_ref::<ErrorCode>() {
            return code.clone().into();
        }
        if let Some(body) = cause.downcast_ref::<Error>() {
            return request_body_error(body);
        }
        if seen_hyper.is_none() {
            seen_hyper = cause.downcast_ref::<hyper::Error>();
        }
        source = cause.source();
    }
    match seen_hyper {
        Some(h) if h.is_timeout() => Error::ConnectionReadTimeout,
        Some(h) if h.is_incomplete_message() => Error::HttpResponseIncomplete,
        Some(h) if h.is_canceled() || h.is_closed() => Error::ConnectionTerminated,
        Some(h) if h.is_parse_too_large() => Error::HttpResponseHeaderSectionSize(None),
        Some(_) => Error::HttpProtocolError,
        None => Error::InternalError(Some(e.to_string())),
    }
}

fn connect_error(e: &ConnectError) -> Error {
    let again = |io: &std::io::Error| std::io::Error::new(io.kind(), io.to_string());
    match e {
        ConnectError::Timeout => Error::ConnectionTimeout,
        ConnectError::NoTarget => Error::HttpRequestUriInvalid,
        // wasi-http turns these into DNS, refused, ... as it does for its own dials.
        ConnectError::Io(io) => Error::Connect(again(io)),
        ConnectError::Tls(io) => Error::Tls(again(io)),
        ConnectError::ServerName(name) => Error::DnsError {
            rcode: Some(format!("invalid DNS name: {name}")),
            info_code: None,
        },
    }
}

/// A request body's error as the guest made it (its size did not match its
/// `content-length`, mostly).
fn request_body_error(e: &Error) -> Error {
    match e {
        Error::HttpRequestBodySize(size) => Error::HttpRequestBodySize(*size),
        other => Error::InternalError(Some(other.to_string())),
    }
}
