//! Outbound HTTP from a step, one request or several at once.
//!
//! The host sends a request only to the hosts the step was granted
//! (`allow: {http: [HOST]}` in a flow, `--allow-http` on the CLI), over a
//! keep-alive connection pool it shares between calls; any other host is
//! [`HttpError::Denied`]. [`send_all`] starts every request before waiting
//! on any, so ten 100 ms requests take about 100 ms, not a second:
//!
//! ```no_run
//! use flowhost_sdk::http::{self, Request};
//!
//! # fn run() -> Result<(), flowhost_sdk::StepError> {
//! let prices = http::send(Request::get("https://api.example.com/prices"))?;
//! let total: f64 = prices.json()?;
//!
//! let requests = (1..=10)
//!     .map(|id| Request::get(format!("https://api.example.com/stock/{id}")))
//!     .collect();
//! for answer in http::send_all(requests) {
//!     match answer {
//!         Ok(response) if response.status == 200 => { /* ... */ }
//!         Ok(response) => { /* a 4xx or 5xx: the body says why */ }
//!         Err(e) => { /* this one failed; the others still answered */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Bodies are read whole, up to [`Request::max_body`] bytes (default
//! [`DEFAULT_MAX_BODY`]); a longer one is [`HttpError::BodyTooLarge`].
//! Outside WebAssembly (in native tests) every request fails.

use std::fmt;
use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{InputStream, StreamError};

use crate::StepError;

/// The most body bytes a response may have unless [`Request::max_body`] says
/// otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ... (any token).
    pub method: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Header names and values, sent in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty sends none.
    pub body: Vec<u8>,
    /// The longest response body accepted, in bytes.
    pub max_body: usize,
    /// Connect, first-byte and between-bytes timeout; `None` leaves them to
    /// the host (the step's deadline bounds every wait anyway).
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` to `url`, no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            timeout: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", url).body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, HttpError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| HttpError::InvalidRequest(format!("body is not JSON: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sets the longest response body accepted, in bytes.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sets the connect, first-byte and between-bytes timeouts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A response, its body read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, values not UTF-8 replaced lossily.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HttpError::InvalidResponse(format!("the body is not the JSON expected: {e}"))
        })
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The host is not in the step's `http` grant.
    Denied,
    /// The request could not be made: a bad URL, method or header.
    InvalidRequest(String),
    /// It was sent but failed: refused, timed out, reset, ... (the WASI
    /// `error-code`, as text).
    Failed(String),
    /// The response body is longer than the request's `max_body`.
    BodyTooLarge {
        /// The cap that was exceeded, in bytes.
        limit: usize,
    },
    /// The response could not be read as asked (not the JSON expected).
    InvalidResponse(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied => write!(f, "the host is not in the step's `http` grant"),
            HttpError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            HttpError::Failed(why) => write!(f, "request failed: {why}"),
            HttpError::BodyTooLarge { limit } => {
                write!(f, "the response body is over its limit of {limit} bytes")
            }
            HttpError::InvalidResponse(why) => write!(f, "invalid response: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A failed request as a step's error: a network failure may pass, so it is
/// `transient`; the rest would fail again, so they are `permanent`.
impl From<HttpError> for StepError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Failed(_) => StepError::transient(e.to_string()),
            _ => StepError::permanent(e.to_string()),
        }
    }
}

/// Sends one request and reads its response.
pub fn send(request: Request) -> Result<Response, HttpError> {
    send_all(vec![request])
        .pop()
        .unwrap_or_else(|| Err(HttpError::Failed("no answer".into())))
}

/// Sends every request at once and waits for all of them; the answers are in
/// the order of `requests`. A failed or denied request is an `Err` in its
/// place and does not stop the others.
pub fn send_all(requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
    let mut flights: Vec<Flight> = requests.into_iter().map(start).collect();
    loop {
        // Pollables are children of their futures and streams: they are
        // dropped (end of this block) before any flight moves on.
        let ready: Vec<usize> = {
            let mut waiting = Vec::new();
            let mut pollables = Vec::new();
            for (i, flight) in flights.iter().enumerate() {
                if let Some(p) = flight.subscribe() {
                    waiting.push(i);
                    pollables.push(p);
                }
            }
            if pollables.is_empty() {
                break;
            }
            let refs: Vec<_> = pollables.iter().collect();
            wasi::io::poll::poll(&refs)
                .into_iter()
                .map(|r| waiting[r as usize])
                .collect()
        };
        for i in ready {
            let placeholder = Flight::Done(Err(HttpError::Failed("moving on".into())));
            let flight = std::mem::replace(&mut flights[i], placeholder);
            flights[i] = flight.advance();
        }
    }
    flights
        .into_iter()
        .map(|f| match f {
            Flight::Done(answer) => answer,
            _ => Err(HttpError::Failed("not finished".into())),
        })
        .collect()
}

/// Where one request of [`send_all`] is.
enum Flight {
    /// Sent; waiting for the response head.
    Waiting {
        future: FutureIncomingResponse,
        max_body: usize,
        /// Writing the body failed; reported unless the response says why.
        body_error: Option<HttpError>,
    },
    /// Reading the body.
    Reading {
        reader: Reader,
        answer: Response,
        max_body: usize,
    },
    Done(Result<Response, HttpError>),
}

impl Flight {
    fn subscribe(&self) -> Option<wasi::io::poll::Pollable> {
        match self {
            Flight::Waiting { future, .. } => Some(future.subscribe()),
            Flight::Reading { reader, .. } => Some(reader.stream.subscribe()),
            Flight::Done(_) => None,
        }
    }

    /// One step on, now that its pollable is ready.
    fn advance(self) -> Flight {
        match self {
            Flight::Waiting {
                future,
                max_body,
                body_error,
            } => match future.get() {
                None => Flight::Waiting {
                    future,
                    max_body,
                    body_error,
                },
                Some(Ok(Ok(response))) => match body_error {
                    Some(e) => Flight::Done(Err(e)),
                    None => reading(response, max_body),
                },
                Some(Ok(Err(code))) => Flight::Done(Err(failed(code))),
                Some(Err(())) => {
                    Flight::Done(Err(HttpError::Failed("response taken twice".into())))
                }
            },
            Flight::Reading {
                reader,
                mut answer,
                max_body,
            } => {
                // Read what is there; at most one byte past the cap, to see it passed.
                let room = (max_body - answer.body.len()).saturating_add(1);
                match reader.stream.read(room.min(64 << 10) as u64) {
                    Ok(bytes) => {
                        answer.body.extend_from_slice(&bytes);
                        if answer.body.len() > max_body {
                            return Flight::Done(Err(HttpError::BodyTooLarge { limit: max_body }));
                        }
                        Flight::Reading {
                            reader,
                            answer,
                            max_body,
                        }
                    }
                    Err(StreamError::Closed) => Flight::Done(Ok(answer)),
                    Err(StreamError::LastOperationFailed(e)) => {
                        Flight::Done(Err(HttpError::Failed(e.to_debug_string())))
                    }
                }
            }
            done @ Flight::Done(_) => done,
        }
    }
}

/// Starts `request`: sends its head, then writes its body.
fn start(request: Request) -> Flight {
    match begin(request) {
        Ok(waiting) => waiting,
        Err(e) => Flight::Done(Err(e)),
    }
}

fn begin(request: Request) -> Result<Flight, HttpError> {
    let target = Target::parse(&request.url)?;
    let invalid = |what: &str| HttpError::InvalidRequest(format!("bad {what} in {}", request.url));
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = wasi::http::types::Fields::from_list(&headers)
        .map_err(|e| HttpError::InvalidRequest(format!("bad header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&target.path))
        .map_err(|()| invalid("path"))?;
    let body = outgoing
        .body()
        .map_err(|()| HttpError::InvalidRequest("the body was taken".into()))?;
    let options = request.timeout.map(|t| {
        let options = RequestOptions::new();
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        // A host may not support a timeout; it then keeps its own.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        options
    });
    // Hand the request over first: its body is streamed while it is sent.
    let future = outgoing_handler::handle(outgoing, options).map_err(failed)?;
    // A denied request's body has nowhere to go: its response says why.
    Ok(Flight::Waiting {
        future,
        max_body: request.max_body,
        body_error: write_body(body, &request.body).err(),
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    {
        let stream = body
            .write()
            .map_err(|()| HttpError::InvalidRequest("the body stream was taken".into()))?;
        // `blocking-write-and-flush` takes at most 4096 bytes a call.
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Failed(format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(failed)
}

/// Starts reading `response`'s body.
fn reading(response: IncomingResponse, max_body: usize) -> Flight {
    let answer = Response {
        status: response.status(),
        headers: response
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
        body: Vec::new(),
    };
    let Ok(body) = response.consume() else {
        return Flight::Done(Err(HttpError::Failed("the body was taken".into())));
    };
    let Ok(stream) = body.stream() else {
        return Flight::Done(Err(HttpError::Failed("the body stream was taken".into())));
    };
    Flight::Reading {
        reader: Reader {
            stream,
            _body: body,
            _response: response,
        },
        answer,
        max_body,
    }
}

/// A response being read. Its fields drop in order, each resource before
/// the one it came from (WASI traps otherwise): the stream, its body, the
/// response.
struct Reader {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

fn failed(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied,
        other => HttpError::Failed(format!("{other:?}")),
    }
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(name.to_string()),
    }
}

/// A URL split as wasi-http takes it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let bad = |why: &str| HttpError::InvalidRequest(format!("{why}: {url}"));
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else {
            return Err(bad("not an http:// or https:// URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad("no host in URL"));
        }
        // A fragment is not sent.
        let tail = tail.split('#').next().unwrap_or("");
        let path = match tail {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(Target {
            https,
            authority: authority.to_string(),
            path,
        })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let t = Target::parse("https://api.example.com:8443/v1/items?id=7#top").unwrap();
        assert_eq!(
            t,
            Target {
                https: true,
                authority: "api.example.com:8443".into(),
                path: "/v1/items?id=7".into()
            }
        );
        let t = Target::parse("HTTP://[::1]:8080?q=1").unwrap();
        assert_eq!(
            (t.https, t.authority.as_str(), t.path.as_str()),
            (false, "[::1]:8080", "/?q=1")
        );
        assert_eq!(Target::parse("http://host").unwrap().path, "/");
        for bad in ["ftp://host/", "host/path", "http:///path", ""] {
            assert!(
                matches!(Target::parse(bad), Err(HttpError::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn requests_are_built_with_their_parts() {
        let r = Request::post("http://h/", "hi")
            .header("X-Id", "1")
            .max_body(10)
            .timeout(Duration::from_secs(2));
        assert_eq!(r.method, "POST");
        assert_eq!(r.body, b"hi");
        assert_eq!(r.headers, vec![("X-Id".to_string(), "1".to_string())]);
        assert_eq!((r.max_body, r.timeout), (10, Some(Duration::from_secs(2))));
        let r = Request::get("http://h/")
            .json(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(r.body, br#"{"a":1}"#);
        assert_eq!(r.headers[0].1, "application/json");
    }

    #[test]
    fn responses_read_headers_and_json() {
        let r = Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"n": 3}"#.to_vec(),
        };
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json::<serde_json::Value>().unwrap()["n"], 3);
        assert!(matches!(
            r.json::<Vec<u8>>(),
            Err(HttpError::InvalidResponse(_))
        ));
    }

    #[test]
    fn network_failures_are_transient_the_rest_permanent() {
        let e: StepError = HttpError::Failed("ConnectionRefused".into()).into();
        assert_eq!(e.kind(), "transient");
        let e: StepError = HttpError::Denied.into();
        assert_eq!(e.kind(), "permanent");
        assert!(e.message().contains("`http` grant"), "{e}");
    }

    #[test]
    fn methods_map_to_wasi_and_others_pass_through() {
        assert!(matches!(method("get"), Method::Get));
        assert!(matches!(method("PATCH"), Method::Patch));
        assert!(matches!(method("PURGE"), Method::Other(m) if m == "PURGE"));
    }
}
