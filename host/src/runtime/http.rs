//! Outbound HTTP (wasi-http), allowed only to the hosts a call was granted.
//! A denied request fails in the guest with `HTTP-request-denied` and is logged.

use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::Context;

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// The allow-list of one call.
pub(crate) struct HttpPolicy {
    allowed: Arc<[String]>,
    ctx: Arc<Context>,
}

impl HttpPolicy {
    pub(crate) fn new(allowed: &[String], ctx: Arc<Context>) -> Self {
        HttpPolicy {
            allowed: allowed.into(),
            ctx,
        }
    }

    /// Whether `host` (and `port`) match an entry: `name` allows any port, `name:port` one.
    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.allowed
            .iter()
            .any(|entry| match entry.rsplit_once(':') {
                Some((name, p)) if p.parse::<u16>().is_ok() => {
                    name.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == port
                }
                _ => entry.eq_ignore_ascii_case(host),
            })
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16();
        if !self.allows(&host, port) {
            tracing::warn!(target: "flowhost::sandbox", step = %self.ctx.step_id, %uri,
                "denied outbound HTTP: host not in the step's `http` grant");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_host_and_port() {
        let p = HttpPolicy::new(
            &["api.example.com".into(), "127.0.0.1:8080".into()],
            Arc::new(Context::direct("t")),
        );
        assert!(p.allows("api.example.com", None));
        assert!(p.allows("API.example.com", Some(443)));
        assert!(p.allows("127.0.0.1", Some(8080)));
        assert!(!p.allows("127.0.0.1", Some(8081)));
        assert!(!p.allows("evil.example.com", None));
    }
}
