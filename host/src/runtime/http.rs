//! Outbound HTTP (wasi-http), allowed only to the hosts a call was granted.
//! A denied request fails in the guest with `HTTP-request-denied` and is logged.

use std::sync::Arc;

use http::Uri;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::{HttpGrant, canonical_host};
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
    allowed: Vec<HttpGrant>,
    ctx: Arc<Context>,
}

impl HttpPolicy {
    pub(crate) fn new(allowed: &[HttpGrant], ctx: Arc<Context>) -> Self {
        HttpPolicy {
            allowed: allowed.to_vec(),
            ctx,
        }
    }

    /// Whether a grant allows `uri`. A URI without a port goes to its
    /// scheme's default port, so `name:443` allows `https://name/`.
    fn allows(&self, uri: &Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let host = canonical_host(host);
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        self.allowed.iter().any(|g| g.allows(&host, port))
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
        if !self.allows(uri) {
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
        let grants: Vec<HttpGrant> = [
            "API.example.com",
            "127.0.0.1:8080",
            "[::1]:443",
            "tls.example.com:443",
        ]
        .iter()
        .map(|g| g.parse().unwrap())
        .collect();
        let p = HttpPolicy::new(&grants, Arc::new(Context::direct("t")));
        let allows = |uri: &str| p.allows(&uri.parse().unwrap());
        assert!(allows("http://api.example.com/v1"));
        assert!(allows("https://Api.Example.com:8443/"));
        assert!(allows("http://127.0.0.1:8080/"));
        assert!(!allows("http://127.0.0.1:8081/"));
        assert!(!allows("http://127.0.0.1/"), "port 80, not 8080");
        assert!(
            allows("https://[0:0::1]/"),
            "IPv6 compares by value, 443 by default"
        );
        assert!(allows("https://tls.example.com/"));
        assert!(!allows("http://tls.example.com/"), "port 80, not 443");
        assert!(!allows("http://evil.example.com/"));
        assert!(!allows("http://api.example.com.evil.com/"));
    }
}
