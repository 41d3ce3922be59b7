//! `flowhost check` and `flowhost run`: validate a flow file, run it once.

use std::path::{Path, PathBuf};

use flowhost::executor::RunRecord;
use flowhost::flow::{Flow, FlowError, load_flow};
use flowhost::store::StoreUrl;
use flowhost::{
    Executor, Host, PluginSet, RunInput, RunOptions, RunStatus, load_plugins, scan_dir,
};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::runs::oneshot;
use super::{Failure, args, trace};

/// Plugin files by name.
type PluginFiles = std::collections::BTreeMap<String, PathBuf>;

/// Arguments of `flowhost check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The flow file (YAML or JSON).
    flow: PathBuf,
    /// The plugins folder (searched recursively; a plugin's name is its file stem).
    /// Without it, plugin names are not checked.
    #[arg(long)]
    plugins: Option<PathBuf>,
}

/// What `flowhost run` and `flowhost dev` share: the flow, its plugins, its
/// input.
#[derive(clap::Args)]
pub(crate) struct FlowArgs {
    /// The flow file (YAML or JSON).
    pub(crate) flow: PathBuf,
    /// The plugins folder (searched recursively; a plugin's name is its file stem).
    #[arg(long)]
    pub(crate) plugins: PathBuf,
    /// Input JSON, `@FILE`, or `@-` for stdin; read once.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Print a timeline of each run on stderr.
    #[arg(long)]
    pub(crate) trace: bool,
    #[command(flatten)]
    pub(crate) cache: super::cache::CacheFlags,
}

impl FlowArgs {
    /// The `--input`, read and checked to be JSON once.
    pub(crate) async fn input(&self) -> Result<RunInput, Failure> {
        let (text, origin) = args::text_arg("--input", &self.input).await?;
        let input = RunInput::parse(text, &origin).map_err(Failure::usage)?;
        // Said here, where the origin is known: the run's own error would
        // only say that `input` cannot be read.
        if let Some(reason) = input.unreadable() {
            tracing::warn!(
                "{origin}: {reason}; steps get it as written, but expressions cannot read it"
            );
        }
        Ok(input)
    }
}

/// Arguments of `flowhost run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    run: FlowArgs,
    /// Write the run record (JSON) to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Record the run in this store (`sqlite:PATH`) too, as a server
    /// records its runs; `flowhost runs` then lists and shows it.
    #[arg(long, value_name = "URL")]
    store: Option<StoreUrl>,
    /// A `flowhost.toml`: its `[databases]` are what `allow: {sql: [NAME]}`
    /// grants reach (its other settings are the server's).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) async fn check(args: CheckArgs) -> Result<(), Failure> {
    let files = match &args.plugins {
        Some(dir) => Some(scan(dir).await?),
        None => None,
    };
    let flow = parse(&args.flow, files.as_ref()).await?;
    let plugins: Vec<_> = flow.plugin_names().into_iter().collect();
    println!(
        "{}: ok: flow `{}`, {}, plugins: {}",
        args.flow.display(),
        flow.name(),
        step_count(flow.step_count(), flow.top_level_step_count()),
        plugins.join(", ")
    );
    Ok(())
}

/// `1 step`, `3 steps`, or with nested steps counted `9 steps (4 top-level)`.
fn step_count(all: usize, top_level: usize) -> String {
    let steps = if all == 1 { "step" } else { "steps" };
    if all == top_level {
        format!("{all} {steps}")
    } else {
        format!("{all} {steps} ({top_level} top-level)")
    }
}

pub(crate) async fn run(args: RunArgs) -> Result<(), Failure> {
    let RunArgs {
        run: flow_args,
        record: record_path,
        store,
        config,
    } = args;
    let mut input = flow_args.input().await?;
    let files = scan(&flow_args.plugins).await?;
    let flow = parse(&flow_args.flow, Some(&files)).await?;
    input
        .check(&flow)
        .map_err(|e| Failure::usage(format!("--input: {e}")))?;
    let services = services(config.as_deref()).await?;
    let host = Host::new(flow_args.cache.config()).map_err(Failure::failed)?;
    let plugins = load(&host, &files, &flow).await?;
    // Opened before the run: a path that cannot be written is bad usage,
    // found before any step has a side effect.
    let record_file = match &record_path {
        Some(path) => Some((open_record(path).await?, path)),
        None => None,
    };

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    // Accepted in the store last: nothing above may fail once it is.
    let recording = match &store {
        Some(url) => {
            let run = oneshot::Run {
                flow: &flow,
                plugins: &plugins,
                input: &input,
            };
            Some(oneshot::begin(url, run).await?)
        }
        None => None,
    };
    let options = RunOptions {
        cancel: Some(cancel),
        run_id: recording.as_ref().map(|r| r.run_id().to_string()),
        journal: recording.as_ref().map(oneshot::Recording::journal),
        ..RunOptions::default()
    };
    // Key-value state: the store's with `--store`, else kept in memory for
    // this run only.
    let kv: std::sync::Arc<dyn flowhost::kv::KvStore> = match &recording {
        Some(recording) => recording.kv(),
        None => std::sync::Arc::new(flowhost::kv::MemoryKv::new()),
    };
    let record = Executor::with_services(host, services.kv(kv))
        .run_input(&flow, &plugins, input, options)
        .await;
    if let (Some(recording), Some(url)) = (recording, &store) {
        match recording.finish(record.clone()).await {
            Ok(()) => eprintln!("flowhost: run {} recorded in {url}", record.run_id),
            Err(e) => eprintln!("flowhost: {e}"),
        }
    }

    if flow_args.trace {
        eprint!("{}", trace::timeline(&record));
    }
    if let Some((file, path)) = record_file {
        // The output is printed whatever becomes of the record.
        if let Err(e) = write_record(file, &record).await {
            eprintln!(
                "cannot write the record to {} (--record): {e}",
                path.display()
            );
        }
    }
    match outcome(&record) {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(lines) => Err(Failure::failed(lines.join("\n"))),
    }
}

/// The databases of `--config`, opened; none without it.
async fn services(config: Option<&Path>) -> Result<flowhost::Services, Failure> {
    let Some(path) = config else {
        return Ok(flowhost::Services::new());
    };
    let settings = super::serve::read_config(path)
        .await
        .map_err(|e| Failure::usage(format!("--config {e}")))?;
    let dir = settings.config_dir.unwrap_or_else(|| ".".into());
    let databases = flowhost::sql::Databases::open(&settings.databases, &dir)
        .await
        .map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))?;
    Ok(flowhost::Services::new().databases(std::sync::Arc::new(databases)))
}

/// The `--record` file, created (or emptied) for writing.
async fn open_record(path: &Path) -> Result<tokio::fs::File, Failure> {
    tokio::fs::File::create(path).await.map_err(|e| {
        Failure::usage(format!(
            "--record {}: cannot write the record there: {e}",
            path.display()
        ))
    })
}

/// Writes the run record as JSON into `file`.
async fn write_record(mut file: tokio::fs::File, record: &RunRecord) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let json = serde_json::to_vec_pretty(record)?;
    file.write_all(&json).await?;
    file.flush().await
}

/// The output of a run that succeeded; else what to print: `flow NAME
/// STATUS: step ... failed: KIND: MESSAGE`, then a line per cause.
pub(crate) fn outcome(record: &RunRecord) -> Result<&RawValue, Vec<String>> {
    match (record.status, &record.output, &record.error) {
        (RunStatus::Succeeded, Some(output), _) => Ok(output),
        (status, _, Some(error)) => {
            let mut lines = vec![format!("flow {} {status}: {error}", record.flow)];
            lines.extend(error.causes.iter().map(|c| format!("  caused by: {c}")));
            Err(lines)
        }
        (status, _, None) => Err(vec![format!("flow {} {status}", record.flow)]),
    }
}

/// The plugin files under `dir`, listed off the async runtime.
pub(crate) async fn scan(dir: &Path) -> Result<PluginFiles, Failure> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || scan_dir(&dir))
        .await
        .map_err(Failure::failed)?
        .map_err(Failure::usage)
}

/// Parses and validates a flow against the plugins in `known` (when given);
/// every error is printed, then exit status 2.
pub(crate) async fn parse(path: &Path, known: Option<&PluginFiles>) -> Result<Flow, Failure> {
    let exists = |name: &str| known.is_some_and(|k| k.contains_key(name));
    let check: Option<&(dyn Fn(&str) -> bool + Sync)> =
        if known.is_some() { Some(&exists) } else { None };
    load_flow(path, check).await.map_err(|errors| {
        let lines: Vec<_> = errors.iter().map(FlowError::to_string).collect();
        Failure::usage(format!(
            "{} error(s) in the flow:\n{}",
            errors.len(),
            lines.join("\n")
        ))
    })
}

/// Loads the plugins the flow uses.
pub(crate) async fn load(
    host: &Host,
    files: &PluginFiles,
    flow: &Flow,
) -> Result<PluginSet, Failure> {
    let (plugins, errors) = load_plugins(host, files, flow.plugin_names()).await;
    if let Some(first) = errors.first() {
        return Err(Failure::usage(first));
    }
    Ok(plugins)
}
