//! The WIT `http` interface, for toolchains without wasi-http bindings:
//! `send-all` checks every request like a wasi-http one (the allow-list,
//! denials logged, [`HttpPolicy::checked`]), sends them all at once over the
//! same pool and reads each body whole, under caps. Every failure is a typed
//! error in the request's place, never a trap.
//!
//! All of one call's requests run as futures of the guest's host call: when
//! the call ends (its deadline included) they are dropped, and a connection
//! whose response was abandoned is closed, not pooled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::{HttpPolicy, Refused};
use crate::printable::printable;
use crate::runtime::bindings::flowhost::step::http::{self as wit, Error};
use crate::runtime::state::StepState;

/// The most requests one call of `send-all` takes.
pub(crate) const MAX_REQUESTS: usize = 64;
/// The most headers one request may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The largest request body, in bytes: 1 MiB.
pub(crate) const MAX_REQUEST_BODY: usize = 1 << 20;
/// The largest response body, in bytes: 4 MiB. Reading stops past it.
pub(crate) const MAX_RESPONSE_BODY: usize = 4 << 20;
/// The response bodies of one call of `send-all` together, in bytes: 16 MiB.
pub(crate) const MAX_RESPONSES: usize = 16 << 20;

/// How much of a URL a message or a log line shows.
const SHOWN: usize = 200;

/// Headers the host sets or that would break a pooled connection.
const HOST_HEADERS: [HeaderName; 10] = [
    header::HOST,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

impl wit::Host for StepState {
    async fn send_all(&mut self, requests: Vec<wit::Request>) -> Vec<Result<wit::Response, Error>> {
        if requests.len() > MAX_REQUESTS {
            let why = format!(
                "send-all takes at most {MAX_REQUESTS} requests, not {}",
                requests.len()
            );
            return requests
                .iter()
                .map(|_| Err(Error::Invalid(why.clone())))
                .collect();
        }
        let policy = &self.http_policy;
        let budget = AtomicUsize::new(MAX_RESPONSES);
        let flights = requests.into_iter().map(|request| {
            let url = shown(&request.url);
            let checked = build(request).and_then(|(request, timeout)| {
                let request = policy.check(request, &url)?;
                Ok((request, timeout))
            });
            let budget = &budget;
            async move {
                let (request, timeout) = checked?;
                send(policy, request, timeout, &url, budget).await
            }
        });
        futures::future::join_all(flights).await
    }
}

impl HttpPolicy {
    /// `request` aimed at exactly what the allow-list checked, or `denied`.
    fn check(
        &self,
        mut request: http::Request<WasiBody>,
        url: &str,
    ) -> Result<http::Request<WasiBody>, Error> {
        match self.checked(request.uri()) {
            Ok(uri) => {
                *request.uri_mut() = uri;
                Ok(request)
            }
            Err(Refused::Denied(why)) => Err(Error::Denied(format!("{url}: {why}"))),
            Err(Refused::Invalid) => Err(Error::Invalid(format!("{url}: not a URL to dial"))),
        }
    }
}

/// The request as the pool sends it, and its own timeout; refused when a
/// part is bad or over its cap.
fn build(r: wit::Request) -> Result<(http::Request<WasiBody>, Option<Duration>), Error> {
    let url = shown(&r.url);
    let invalid = |why: String| Error::Invalid(format!("{url}: {why}"));
    let uri: Uri = r
        .url
        .parse()
        .map_err(|e| invalid(format!("not a URL ({e})")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("only http:// and https:// URLs can be sent".into()));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL names no host".into()));
    }
    let method = Method::from_bytes(r.method.as_bytes())
        .map_err(|_| invalid(format!("`{}` is not a method", printable(&r.method))))?;
    if r.headers.len() > MAX_HEADERS {
        return Err(invalid(format!(
            "{} headers, over the cap of {MAX_HEADERS}",
            r.headers.len()
        )));
    }
    let body = r.body.unwrap_or_default();
    if body.len() > MAX_REQUEST_BODY {
        return Err(Error::TooLarge(format!(
            "{url}: the request body is {} bytes, over the cap of {MAX_REQUEST_BODY}",
            body.len()
        )));
    }
    let mut request = http::Request::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    for (name, value) in r.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not a header name", printable(&name))))?;
        if HOST_HEADERS.contains(&name) {
            return Err(invalid(format!("the host sets the `{name}` header")));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| invalid(format!("the value of header `{name}` is not allowed")))?;
        request.headers_mut().append(name, value);
    }
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    Ok((
        request,
        r.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
    ))
}

/// Sends one checked request over the pool and reads its response whole,
/// within its own timeout and the call's deadline.
async fn send(
    policy: &HttpPolicy,
    request: http::Request<WasiBody>,
    timeout: Option<Duration>,
    url: &str,
    budget: &AtomicUsize,
) -> Result<wit::Response, Error> {
    let now = Instant::now();
    let by = timeout.map_or(policy.deadline, |t| {
        crate::duration::after(now, t).min(policy.deadline)
    });
    let options = timeout.map(|t| RequestOptions {
        connect_timeout: Some(t),
        first_byte_timeout: Some(t),
        between_bytes_timeout: Some(t),
    });
    let exchange = async {
        let response = policy
            .pool
            .send(request, options, policy.deadline)
            .await
            .map_err(|e| failure(url, &e))?;
        read(response, url, budget).await
    };
    match tokio::time::timeout_at(by.into(), exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::Timeout(match timeout {
            Some(t) => format!("{url}: no whole answer within {} ms", t.as_millis()),
            None => format!("{url}: no whole answer by the step's deadline"),
        })),
    }
}

/// The response with its body, stopped past the response's cap or the
/// call's budget.
async fn read(
    response: http::Response<WasiBody>,
    url: &str,
    budget: &AtomicUsize,
) -> Result<wit::Response, Error> {
    let (head, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failure(url, &e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > MAX_RESPONSE_BODY {
            return Err(Error::TooLarge(format!(
                "{url}: the response body passed the cap of {MAX_RESPONSE_BODY} bytes"
            )));
        }
        take(budget, data.len()).map_err(|()| {
            Error::TooLarge(format!(
                "{url}: the responses of one send-all passed {MAX_RESPONSES} bytes together"
            ))
        })?;
        bytes.extend_from_slice(&data);
    }
    let headers = head
        .headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_string(), value)
        })
        .collect();
    Ok(wit::Response {
        status: head.status.as_u16(),
        headers,
        body: bytes,
    })
}

/// Takes `n` bytes from what the call's responses may still read.
fn take(budget: &AtomicUsize, n: usize) -> Result<(), ()> {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(n)
        })
        .map(|_| ())
        .map_err(|_| ())
}

/// A failure of the pool or of the connection, as the guest sees it.
fn failure(url: &str, e: &wasmtime_wasi_http::Error) -> Error {
    use wasmtime_wasi_http::Error as E;
    match e {
        E::DnsTimeout
        | E::ConnectionTimeout
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::HttpResponseTimeout => Error::Timeout(format!("{url}: {e}")),
        E::HttpRequestDenied => Error::Denied(format!("{url}: {e}")),
        _ => Error::Failed(format!("{url}: {e}")),
    }
}

/// A guest's URL made safe and short enough for a message.
fn shown(url: &str) -> String {
    let text = printable(url);
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
