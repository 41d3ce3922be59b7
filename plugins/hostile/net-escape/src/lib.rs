//! Hostile: tries to reach the network and reports what happened instead of
//! failing: `{"tcp": "connected" | "error: ...", "http": "status N" | "error: ..."}`.
//! Input: `{"addr": "127.0.0.1:PORT"}`; the test listens there and checks
//! that nothing arrived.

use std::net::TcpStream;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

#[derive(Deserialize)]
struct Input {
    addr: String,
}

#[derive(Serialize)]
struct Report {
    tcp: String,
    http: String,
}

struct NetEscape;

impl Step for NetEscape {
    type Input = Input;
    type Output = Report;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, Input { addr }: Input) -> Result<Report, StepError> {
        // wasip2's std implements TcpStream over wasi:sockets.
        let tcp = match TcpStream::connect(&addr) {
            Ok(_) => "connected".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let http = match http_get(&addr) {
            Ok(status) => format!("status {status}"),
            Err(e) => format!("error: {e}"),
        };
        Ok(Report { tcp, http })
    }
}

/// GET http://{addr}/ through wasi:http.
fn http_get(addr: &str) -> Result<u16, String> {
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "bad method")?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(addr))
        .map_err(|()| format!("bad authority {addr}"))?;
    request
        .set_path_with_query(Some("/"))
        .map_err(|()| "bad path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let status = match pending.get() {
        Some(Ok(Ok(response))) => response.status(),
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        Some(Err(())) => return Err("response already taken".into()),
        None => return Err("response not ready after waiting".into()),
    };
    Ok(status)
}

export_step!(NetEscape);
