//! Outbound HTTP (wasi-http) from steps: allowed only to the hosts a call
//! was granted ([`policy`]), sent over the host-wide keep-alive pool
//! ([`pool`], dialed by [`connect`]). A denied request fails in the guest
//! with `HTTP-request-denied` and is logged.

mod connect;
mod policy;
mod pool;

use std::sync::Arc;
use std::time::Instant;

use http::Uri;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::HttpGrant;
use crate::printable::printable;
use crate::runtime::Context;
use policy::AllowList;
pub(crate) use pool::{HttpPool, PoolSettings};

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

/// One call's outbound HTTP: its allow-list, the host's pool, its deadline.
pub(crate) struct HttpPolicy {
    allowed: AllowList,
    pool: HttpPool,
    ctx: Arc<Context>,
    deadline: Instant,
}

impl HttpPolicy {
    pub(crate) fn new(
        allowed: &[HttpGrant],
        pool: HttpPool,
        ctx: Arc<Context>,
        deadline: Instant,
    ) -> Self {
        HttpPolicy {
            allowed: AllowList::new(allowed),
            pool,
            ctx,
            deadline,
        }
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let target = match self.allowed.target(request.uri()) {
            Ok(target) => target,
            Err(why) => {
                let uri = printable(&request.uri().to_string()).into_owned();
                tracing::warn!(target: "flowhost::sandbox", step = %self.ctx.step_id, %uri,
                    "denied outbound HTTP: {why}");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        // Dial exactly the host and port that were checked: the pool keys
        // its connections by this authority and the connector dials it.
        let mut parts = request.uri().clone().into_parts();
        parts.authority = Some(target);
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return Box::new(async { Err(Error::HttpRequestUriInvalid) }),
        }
        let pool = self.pool.clone();
        let deadline = self.deadline;
        Box::new(async move {
            let response = pool.send(request, options, deadline).await?;
            // The pool drives the connection on its own task: nothing to
            // hand back for the guest to wait on.
            let io = async { Ok(()) };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}
