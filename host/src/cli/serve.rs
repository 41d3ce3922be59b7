//! `flowhost serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;

use flowhost::Host;
use flowhost::server::{Server, ServerConfig};

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
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut config = match &args.config {
        Some(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            ServerConfig::from_toml(&text)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
        }
        None => ServerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let host = Host::new(args.cache.apply(config.host_config())).map_err(Failure::failed)?;
    let server = Server::start(host, &args.plugins, &args.flows, config)
        .await
        .map_err(Failure::usage)?;
    // A line tests and scripts can wait for.
    eprintln!("flowhost: listening on http://{}", server.addr());
    let report = server.run_until_signal().await;
    eprintln!(
        "flowhost: stopped: {} run(s) drained, {} cancelled mid-run {:?}, {} queued run(s) never started {:?}",
        report.drained,
        report.cancelled_running.len(),
        report.cancelled_running,
        report.cancelled_queued.len(),
        report.cancelled_queued
    );
    Ok(())
}
