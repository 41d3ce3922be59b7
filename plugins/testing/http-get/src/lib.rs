//! Makes an outbound HTTP GET through `wasi:http/outgoing-handler` and returns
//! `{"status": <code>}`. A failed request is a transient error carrying the
//! WASI error code. Tests the host's network policy.
//!
//! Config: `{"url": "http://host:port/path"}` (http or https).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

#[derive(Deserialize)]
struct Config {
    url: String,
}

#[derive(Serialize)]
struct Output {
    status: u16,
}

struct HttpGet;

impl Step for HttpGet {
    type Input = Value;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Output, StepError> {
        let Config { url } = ctx.config()?;
        let status = get(&url)?;
        log::info!("GET {url}: {status}");
        Ok(Output { status })
    }
}

/// GETs `url` and returns the response status; the body is not read.
fn get(url: &str) -> Result<u16, StepError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(StepError::invalid_input(format!(
            "not an http(s) URL: {url}"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };

    let request = OutgoingRequest::new(Fields::new());
    // The setters only fail on malformed values.
    let bad = |what: &str| StepError::invalid_input(format!("bad {what} in URL: {url}"));
    request
        .set_method(&Method::Get)
        .map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| bad("path"))?;

    let failed = |e: String| StepError::transient(format!("GET {url} failed: {e}"));
    let pending = outgoing_handler::handle(request, None).map_err(|e| failed(format!("{e:?}")))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(format!("{code:?}"))),
        Some(Err(())) => return Err(failed("response already taken".into())),
        None => return Err(failed("response not ready after waiting".into())),
    };
    Ok(response.status())
}

export_step!(HttpGet);
