//! `flowhost check` and `flowhost run`: validate a flow file, run it once.

use std::path::{Path, PathBuf};

use flowhost::flow::{Flow, FlowError, load_flow};
use flowhost::{Executor, Host, PluginSet, RunOptions, RunStatus, load_plugins, scan_dir};
use tokio_util::sync::CancellationToken;

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

/// Arguments of `flowhost run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The flow file (YAML or JSON).
    flow: PathBuf,
    /// The plugins folder (searched recursively; a plugin's name is its file stem).
    #[arg(long)]
    plugins: PathBuf,
    /// Input JSON, `@FILE`, or `@-` for stdin.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Write the run record (JSON) to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Print a timeline of the run on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn check(args: CheckArgs) -> Result<(), Failure> {
    let files = match &args.plugins {
        Some(dir) => Some(scan(dir).await?),
        None => None,
    };
    let flow = parse(&args.flow, files.as_ref()).await?;
    let steps = flow.all_steps().len();
    let plugins: Vec<_> = flow.plugin_names().into_iter().collect();
    println!(
        "{}: ok: flow `{}`, {steps} steps, plugins: {}",
        args.flow.display(),
        flow.name,
        plugins.join(", ")
    );
    Ok(())
}

pub(crate) async fn run(args: RunArgs) -> Result<(), Failure> {
    let input = args::json_arg("--input", &args.input).await?;
    let input: serde_json::Value = serde_json::from_str(&input).map_err(Failure::usage)?;
    let files = scan(&args.plugins).await?;
    let flow = parse(&args.flow, Some(&files)).await?;
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let plugins = load(&host, &files, &flow).await?;

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let options = RunOptions {
        cancel: Some(cancel),
        ..RunOptions::default()
    };
    let record = Executor::new(host)
        .run(&flow, &plugins, input, options)
        .await;

    if args.trace {
        eprint!("{}", trace::timeline(&record));
    }
    if let Some(path) = &args.record {
        let json = serde_json::to_string_pretty(&record).map_err(Failure::failed)?;
        tokio::fs::write(path, json).await.map_err(|e| {
            Failure::failed(format!(
                "cannot write the record to {}: {e}",
                path.display()
            ))
        })?;
    }
    match (record.status, &record.output, &record.error) {
        (RunStatus::Succeeded, Some(output), _) => {
            println!("{output}");
            Ok(())
        }
        (_, _, Some(error)) => {
            let mut text = format!("flow {} {}: {error}", flow.name, record.status);
            for cause in &error.causes {
                text.push_str(&format!("\n  caused by: {cause}"));
            }
            Err(Failure::failed(text))
        }
        (status, _, _) => Err(Failure::failed(format!("flow {} {status}", flow.name))),
    }
}

/// The plugin files under `dir`, listed off the async runtime.
async fn scan(dir: &Path) -> Result<PluginFiles, Failure> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || scan_dir(&dir))
        .await
        .map_err(Failure::failed)?
        .map_err(Failure::usage)
}

/// Parses and validates a flow against the plugins in `known` (when given);
/// every error is printed, then exit status 2.
async fn parse(path: &Path, known: Option<&PluginFiles>) -> Result<Flow, Failure> {
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
async fn load(host: &Host, files: &PluginFiles, flow: &Flow) -> Result<PluginSet, Failure> {
    let (plugins, errors) = load_plugins(host, files, flow.plugin_names()).await;
    if let Some(first) = errors.first() {
        return Err(Failure::usage(first));
    }
    Ok(plugins)
}
