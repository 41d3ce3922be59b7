//! `flowhost call`: run one step component once.

use std::path::PathBuf;
use std::time::Duration;

use flowhost::{CallError, CallOptions, Context, DirGrant, Grants, Host, HttpGrant, Limits};

use super::{Failure, args};

/// Arguments of `flowhost call`.
#[derive(clap::Args)]
pub(crate) struct CallArgs {
    /// The step component (`.wasm`).
    plugin: PathBuf,
    /// Input JSON, `@FILE`, or `@-` for stdin.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The step's config JSON (`ctx.config`).
    #[arg(long, default_value = "{}")]
    config: String,
    /// Deadline for the call.
    #[arg(long, value_parser = args::timeout)]
    timeout: Option<Duration>,
    /// A cap on the call's fuel (about one unit per guest instruction);
    /// without it only the deadline bounds CPU time.
    /// At least 1.
    #[arg(long, value_parser = args::fuel)]
    fuel: Option<u64>,
    /// Linear memory cap, for example 64MiB; at least 64KiB.
    #[arg(long, value_parser = args::memory)]
    max_memory: Option<u64>,
    /// Output size cap, for example 1MiB.
    #[arg(long, value_parser = args::size)]
    max_output: Option<u64>,
    /// Mount a host directory: HOST[:GUEST[:ro|rw]] (read-only by default).
    #[arg(long, value_parser = args::dir_grant)]
    allow_dir: Vec<DirGrant>,
    /// Let the step read this host environment variable.
    #[arg(long)]
    allow_env: Vec<String>,
    /// Let the step make outbound HTTP requests to this host: `name`,
    /// `name:port`, an IPv4 address or an IPv6 one in brackets (`[::1]:8080`).
    #[arg(long)]
    allow_http: Vec<HttpGrant>,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: CallArgs) -> Result<(), Failure> {
    args::warn_open_grants(&args.allow_http);
    let input = args::json_arg("--input", &args.input).await?;
    let config = args::json_arg("--config", &args.config).await?;
    let defaults = Limits::default();
    let limits = Limits {
        timeout: args.timeout.unwrap_or(defaults.timeout),
        fuel: args.fuel.or(defaults.fuel),
        max_memory: args.max_memory.unwrap_or(defaults.max_memory),
        max_output: args.max_output.unwrap_or(defaults.max_output),
        ..defaults
    };
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let plugin = host.load(&args.plugin).await.map_err(Failure::usage)?;
    let ctx = Context {
        config,
        ..Context::direct(plugin.name())
    };
    let options = CallOptions {
        limits: Some(limits),
        grants: Grants {
            dirs: args.allow_dir,
            env: args.allow_env,
            http: args.allow_http,
            ..Grants::default()
        },
        events: None,
        services: Default::default(),
    };
    let report = host.call_with(&plugin, &ctx, &input, &options).await;
    match report.result {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(e) => Err(Failure::failed(describe_failure(plugin.name(), &e))),
    }
}

/// `step NAME failed: KIND: MESSAGE`, with the guest backtrace for traps.
pub(crate) fn describe_failure(step: &str, e: &CallError) -> String {
    let mut text = format!("step {step} failed: {e}");
    if let CallError::Trap {
        backtrace: Some(bt),
        ..
    } = e
    {
        text.push_str("\nguest backtrace:\n");
        text.push_str(bt.trim_end());
    }
    text
}
