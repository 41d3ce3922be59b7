//! Outbound HTTP from steps, through wasi-http or our WIT `http` interface
//! ([`batch`]): allowed only to the hosts a call was granted ([`policy`]),
//! sent over the host-wide keep-alive pool ([`pool`], dialed by
//! [`connect`]). A denied request fails in the guest (wasi-http's
//! `HTTP-request-denied`, `http`'s `denied`) and is logged.

mod batch;
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

/// Why a request may not be sent as it is.
enum Refused {
    /// Not to this host: logged, the guest sees a denial.
    Denied(&'static str),
    /// The checked URI could not be rebuilt.
    Invalid,
}

impl HttpPolicy {
    /// `uri` with exactly the host and port the allow-list checked, which the
    /// pool keys its connections by and the connector dials. A denial is
    /// logged here, for every way a step sends.
    fn checked(&self, uri: &Uri) -> Result<Uri, Refused> {
        let target = self.allowed.target(uri).map_err(|why| {
            let uri = printable(&uri.to_string()).into_owned();
            tracing::warn!(target: "flowhost::sandbox", step = %self.ctx.step_id, %uri,
                "denied outbound HTTP: {why}");
            Refused::Denied(why)
        })?;
        let mut parts = uri.clone().into_parts();
        parts.authority = Some(target);
        Uri::from_parts(parts).map_err(|_| Refused::Invalid)
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        match self.checked(request.uri()) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(Refused::Denied(_)) => return Box::new(async { Err(Error::HttpRequestDenied) }),
            Err(Refused::Invalid) => return Box::new(async { Err(Error::HttpRequestUriInvalid) }),
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
