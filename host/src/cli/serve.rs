//! `flowhost serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;

use flowhost::Host;
use flowhost::server::{Server, ServerConfig};
use flowhost::store::StoreUrl;

use super::Failure;

/// Arguments of `flowhost serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The plugins folder (watched; searched recursively).
    #[arg(long)]
    plugins: PathBuf,
    /// The flows folder (watched).
    #[arg(long)]
    flows: PathBuf,
    /// Where to listen (overrides the config file). Default: 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A `flowhost.toml` with the server's settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where runs are kept: `sqlite:PATH`, `memory` (lost on exit), or
    /// `postgres://USER@HOST:PORT/DB`, which several servers share.
    /// Default: `store` in the config file, else `sqlite:DATA_DIR/flowhost.db`.
    #[arg(long, value_name = "URL")]
    store: Option<flowhost::store::StoreUrl>,
    /// The folder of the default store. Default: $FLOWHOST_DATA_DIR, else
    /// $XDG_DATA_HOME/flowhost, else ~/.local/share/flowhost.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With a shared (postgres) store: how long this server holds a run
    /// without renewing its claim (`5s`); a dead server's runs move to the
    /// others after it. Overrides `lease` in the config file.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::args::timeout)]
    lease: Option<std::time::Duration>,
    /// Serve beyond loopback without an API token: anyone who reaches the
    /// port can run flows and read their data. Without it, a non-loopback
    /// `--listen` needs `api_token_hash` or $FLOWHOST_API_TOKEN.
    #[arg(long)]
    insecure_no_auth: bool,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut config = match &args.config {
        Some(path) => read_config(path).await.map_err(Failure::usage)?,
        None => ServerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.insecure_no_auth = args.insecure_no_auth;
    if let Some(store) = args.store {
        config.store = Some(store);
    }
    if let Some(lease) = args.lease {
        if lease < std::time::Duration::from_secs(1) {
            return Err(Failure::usage("--lease: it must be at least 1s"));
        }
        config.lease = lease;
    }
    if config.store.is_none() {
        config.store = Some(
            StoreUrl::default_in(args.data_dir.as_deref()).ok_or_else(|| {
                Failure::usage("no data directory: set --data-dir, --store or $FLOWHOST_DATA_DIR")
            })?,
        );
    }
    let host = Host::new(args.cache.apply(config.host_config())).map_err(Failure::failed)?;
    let server = Server::start(host, &args.plugins, &args.flows, config)
        .await
        .map_err(Failure::usage)?;
    eprintln!("flowhost: store: {}", server.store());
    if let Some(worker) = server.worker() {
        eprintln!("flowhost: worker {worker}");
    }
    // A line tests and scripts can wait for.
    eprintln!("flowhost: listening on http://{}", server.addr());
    let report = server.run_until_signal().await;
    if report.left_to_resume.is_empty() {
        eprintln!(
            "flowhost: stopped: {} run(s) drained, {} cancelled mid-run {:?}, {} queued run(s) never started {:?}",
            report.drained,
            report.cancelled_running.len(),
            report.cancelled_running,
            report.cancelled_queued.len(),
            report.cancelled_queued
        );
    } else {
        eprintln!(
            "flowhost: stopped: {} run(s) drained, {} left in the store to resume at the next start {:?}",
            report.drained,
            report.left_to_resume.len(),
            report.left_to_resume
        );
    }
    Ok(())
}

/// The folder of the config file `path`, where its relative paths start.
/// Reads and checks a `flowhost.toml`, noting its folder (relative paths in
/// it, such as a SQLite database's, are taken from there). The error names the file.
pub(crate) async fn read_config(path: &std::path::Path) -> Result<ServerConfig, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut config =
        ServerConfig::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    config.config_dir = Some(config_dir(path));
    Ok(config)
}

fn config_dir(path: &std::path::Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
