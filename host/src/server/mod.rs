//! `flowhost serve`: flows over HTTP and events, through a bounded queue and
//! a fixed worker pool, observable and safe to stop.
//!
//! Lifecycle: [`Server::start`] loads the plugins and flows (hot-reloaded
//! from then on), binds, and serves. [`Server::shutdown`] (or SIGTERM/Ctrl-C
//! under [`Server::run_until_signal`]) stops accepting, lets in-flight runs
//! finish within `drain_timeout`, cancels what is left and reports it. Runs
//! live in memory only: a restart forgets queued and finished runs.

mod api;
mod config;
mod error;
mod events;
mod extract;
mod health;

mod probe;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::ServerConfig;
pub use state::ShutdownReport;

use crate::host::Host;
use crate::live::{LiveFlows, LivePlugins, WatchOptions};

/// A running server.
pub struct Server {
    state: Arc<state::State>,
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The plugins or flows folder could not be opened.
    #[error("{0}")]
    Load(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl Server {
    /// Loads plugins and flows, binds `config.listen` and starts serving.
    pub async fn start(
        host: Host,
        plugins_dir: &std::path::Path,
        flows_dir: &std::path::Path,
        config: ServerConfig,
    ) -> Result<Server, ServeError> {
        let plugins = LivePlugins::open(&host, plugins_dir, WatchOptions::default())
            .await
            .map_err(|e| ServeError::Load(e.to_string()))?;
        let flows = LiveFlows::open(flows_dir, WatchOptions::default())
            .await
            .map_err(|e| ServeError::Load(e.to_string()))?;
        let probe = probe::load(&host)
            .await
            .map_err(|e| ServeError::Load(format!("the readiness probe does not load: {e}")))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = state::State::new(host, plugins, flows, probe, config);
        state.watch_reloads().await;
        health::start_heartbeat(&state);
        let stop = tokio_util::sync::CancellationToken::new();
        let app = api::router(state.clone());
        let stopped = stop.clone();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
        });
        tracing::info!(%addr, "serving");
        Ok(Server {
            state,
            addr,
            stop,
            serving,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drains in-flight runs, cancels the rest, and reports.
    pub async fn shutdown(self) -> ShutdownReport {
        let report = self.state.shutdown().await;
        self.stop.cancel();
        let _ = self.serving.await;
        report
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down.
    pub async fn run_until_signal(self) -> ShutdownReport {
        wait_for_signal().await;
        tracing::info!("shutting down: no new runs; draining in-flight runs");
        self.shutdown().await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
