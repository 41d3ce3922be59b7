//! Accepting connections, bounded against slow and idle clients: a
//! connection whose request headers do not arrive within
//! `header_read_timeout` is closed (idle keep-alive ones too), and at most
//! `max_connections` are open at once; past it, new connections wait in the
//! listen backlog until one closes, and a warning says so (at most once a
//! minute). Stopping closes idle connections at once and lets requests in
//! flight finish, within [`CLOSE_GRACE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a stop waits for the requests in flight (a run's answer, an
/// event stream) before it drops their connections.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How often, at most, reaching the connection bound is logged.
const BOUND_LOG_EVERY: Duration = Duration::from_secs(60);

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `app` on `listener` until `stop`, then closes every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(bounds.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout);
    let mut last_warned: Option<Instant> = None;
    loop {
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_warned.is_none_or(|at| at.elapsed() >= BOUND_LOG_EVERY) {
                    tracing::warn!(
                        max_connections = bounds.max_connections,
                        "the connection bound is reached: new connections wait until one closes"
                    );
                    last_warned = Some(Instant::now());
                }
                tokio::select! {
                    permit = open.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back: every connection closed.
    let all = u32::try_from(bounds.max_connections).unwrap_or(u32::MAX);
    let _ = open.acquire_many(all).await;
    Ok(())
}

/// A failed accept: a connection reset before it was accepted is nothing;
/// anything else (out of file descriptors) is logged, and accepting pauses
/// so as not to spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
