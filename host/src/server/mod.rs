//! `flowhost serve`: flows over HTTP and events, through a bounded queue and
//! a fixed worker pool, observable and safe to stop.
//!
//! Lifecycle: [`Server::start`] opens the store, loads the plugins and flows
//! (hot-reloaded from then on), resumes the runs the store holds unfinished,
//! binds, and serves. A run is answered only once the store has committed
//! it. [`Server::shutdown`] (or SIGTERM/Ctrl-C under
//! [`Server::run_until_signal`]) stops accepting and lets in-flight runs
//! finish within `drain_timeout`; with a durable store the rest stay in it
//! to resume at the next start, with the memory store they are cancelled.

mod admit;
mod api;
mod auth;
mod bodies;
mod config;
mod error;
mod events;
mod extract;
mod fleet;
mod health;
mod listen;
mod login;
mod openapi;
mod probe;
mod rerun;
mod resume;
mod services;
mod session;
mod shutdown;
mod state;
mod token;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::ServerConfig;
pub use state::ShutdownReport;
// The web UI (`crate::ui`) reads the server's state.
pub(crate) use state::{Lookup, State};
pub use token::TokenHash;

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
    /// The store could not be opened (or read to resume its runs).
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The API token setting is unusable, or the server would listen
    /// beyond loopback without one.
    #[error("{0}")]
    Auth(String),
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
        let token = token::configured(&config)?;
        token::check_exposure(&config, token.as_ref())?;
        let bounds = crate::store::memory::Bounds {
            records: config.run_history,
            bytes: config.run_history_bytes,
            max_output: config.run_history_max_output,
        };
        let url = config
            .store
            .clone()
            .unwrap_or(crate::store::StoreUrl::Memory);
        let options = crate::store::OpenOptions {
            bounds,
            queue_capacity: config.queue_capacity,
            lease: config.lease,
        };
        let store = crate::store::open(&url, &options).await?;
        let folders = Folders {
            plugins: plugins_dir,
            flows: flows_dir,
        };
        Server::launch(host, folders, config, store, token).await
    }

    /// [`Server::start`] on a store already open (`config.store` is not
    /// read): for an embedder that shares or watches its store.
    pub async fn start_with_store(
        host: Host,
        plugins_dir: &std::path::Path,
        flows_dir: &std::path::Path,
        config: ServerConfig,
        store: std::sync::Arc<dyn crate::store::Store>,
    ) -> Result<Server, ServeError> {
        let token = token::configured(&config)?;
        token::check_exposure(&config, token.as_ref())?;
        let folders = Folders {
            plugins: plugins_dir,
            flows: flows_dir,
        };
        Server::launch(host, folders, config, store, token).await
    }

    async fn launch(
        host: Host,
        folders: Folders<'_>,
        config: ServerConfig,
        store: std::sync::Arc<dyn crate::store::Store>,
        token: Option<TokenHash>,
    ) -> Result<Server, ServeError> {
        let (plugins_dir, flows_dir) = (folders.plugins, folders.flows);
        let plugins = match &config.replay_gate {
            Some(settings) => {
                if !store.durable() {
                    tracing::warn!(
                        "replay_gate: the memory store keeps no step inputs, so every plugin swap passes; serve with a durable --store"
                    );
                }
                let gate = Arc::new(crate::replay::Gate {
                    host: host.clone(),
                    store: store.clone(),
                    settings: settings.clone(),
                });
                LivePlugins::open_gated(&host, plugins_dir, WatchOptions::default(), gate).await
            }
            None => LivePlugins::open(&host, plugins_dir, WatchOptions::default()).await,
        }
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
        let bounds = listen::Bounds {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
        };
        let auth = token.map(|token| {
            Arc::new(auth::Auth {
                token,
                sessions: session::Sessions::new(config.session_lifetime),
            })
        });
        let state = state::State::new(host, plugins, flows, probe, store, config);
        let resumed = state.resume().await?;
        if resumed > 0 {
            tracing::info!(
                runs = resumed,
                "resumed the runs an earlier start left unfinished"
            );
        }
        state.start_pruning();
        state.start_fleet();
        state.watch_reloads().await;
        health::start_heartbeat(&state);
        let stop = tokio_util::sync::CancellationToken::new();
        let app = auth::protect(api::router(state.clone()), auth);
        let serving = tokio::spawn(listen::serve(listener, app, bounds, stop.clone()));
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

    /// The store it keeps runs in, as its start line names it.
    pub fn store(&self) -> String {
        self.state.store.describe()
    }

    /// Its worker id, when it shares its store with other servers.
    pub fn worker(&self) -> Option<String> {
        self.state.fleet.as_ref().map(|f| f.worker_id().to_string())
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

/// The folders a server loads from.
struct Folders<'a> {
    plugins: &'a std::path::Path,
    flows: &'a std::path::Path,
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
