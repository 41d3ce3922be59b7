//! Command-line front end: argument parsing, logging setup and exit codes.
//!
//! Exit codes: 0 success; 1 the step or flow failed; 2 bad usage or input
//! (a bad flag, bad JSON, a missing file, not a step component), on one line.

mod args;
mod bench;
mod build;
mod cache;
mod call;
mod dev;
mod inspect;
mod new;
#[cfg(feature = "otlp")]
mod otlp;
mod plugins;
mod replay;
mod run;
mod runs;
mod serve;
mod test;
mod token;
mod trace;
mod usage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A host for sandboxed WebAssembly flow steps.
#[derive(Parser)]
#[command(name = "flowhost", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Call one step component with a JSON input and print its output.
    Call(call::CallArgs),
    /// Print a step component's metadata, imports, exports, size and compile time.
    Inspect(inspect::InspectArgs),
    /// Validate a flow file: exit 0, or print every error and exit 2.
    Check(run::CheckArgs),
    /// Run a flow once: its output on stdout, exit 1 when it fails.
    Run(run::RunArgs),
    /// Run a flow many times at once and print throughput, latency,
    /// failures by kind and per-step figures.
    Bench(bench::BenchArgs),
    /// Create a step project (Rust, JavaScript, Python or C) that builds and runs as is.
    New(new::NewArgs),
    /// Load every plugin in a folder and list name, version, hash, size,
    /// compile time and error; exit 1 when any failed to load.
    Plugins(plugins::PluginsArgs),
    /// Show or clear the compile cache.
    Cache(cache::CacheArgs),
    /// List, show, cancel and rerun the runs a store keeps (`--store`), or
    /// a running server's (`--server`).
    Runs(runs::RunsArgs),
    /// Serve flows over HTTP: runs, events, metrics and health, hot-reloading
    /// plugins and flows.
    Serve(serve::ServeArgs),
    /// Make the `api_token_hash` of `flowhost.toml` from a token on stdin.
    Token(token::TokenArgs),
    /// Replay the calls a plugin received in a store's recorded runs against
    /// a new version of it, and compare the outputs; exit 1 when any changed.
    Replay(replay::ReplayArgs),
    /// Run a flow, then re-run it whenever its plugins or flow file change
    /// (rebuilding plugins that have a `step.toml`).
    Dev(dev::DevArgs),
    /// Run test files' cases (mocked steps, virtual time): `N passed, M
    /// failed`, exit 1 when one fails, 2 for an invalid test file.
    Test(test::TestArgs),
}

/// An error at the edge, with the exit code it maps to.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Bad usage or input: exit status 2.
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The step or flow failed: exit status 1.
    pub(crate) fn failed(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
}

pub(crate) fn main() -> ExitCode {
    let cli: Cli = usage::parse();
    let _logging = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::failed(format!("cannot start the runtime: {e}"))),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Call(args) => call::run(args).await,
            Command::Inspect(args) => inspect::run(args).await,
            Command::Check(args) => run::check(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::New(args) => new::run(args).await,
            Command::Plugins(args) => plugins::run(args).await,
            Command::Cache(args) => cache::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Runs(args) => runs::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Test(args) => test::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    eprintln!("flowhost: {}", failure.message);
    ExitCode::from(failure.code)
}

/// Logs go to stderr, as text or JSON; with the `otlp` feature, spans are
/// also exported when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The returned
/// guard flushes the exporter when dropped.
fn init_logging(format: LogFormat) -> impl Drop {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt};
    let filter = EnvFilter::try_from_env("FLOWHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let output = match format {
        LogFormat::Text => fmt::layer().compact().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(output);
    #[cfg(feature = "otlp")]
    {
        let (layer, guard) = otlp::layer();
        registry.with(layer).init();
        guard
    }
    #[cfg(not(feature = "otlp"))]
    {
        registry.init();
        NoExport
    }
}

/// The logging guard when nothing is exported.
#[cfg(not(feature = "otlp"))]
struct NoExport;

#[cfg(not(feature = "otlp"))]
impl Drop for NoExport {
    fn drop(&mut self) {}
}
