//! `flowhost replay PLUGIN.wasm --store URL`: the calls the plugin of that
//! name received in the runs a store keeps, made again against the new
//! component and compared with what was recorded.

use std::path::PathBuf;
use std::sync::Arc;

use flowhost::Host;
use flowhost::replay::{Report, Selection, Verdict, collect, replay};
use flowhost::store::sqlite::SqliteStore;
use flowhost::store::{Store, StoreUrl};

use super::Failure;

/// Arguments of `flowhost replay`.
#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    /// The new version of the plugin (`.wasm`); its file stem names the
    /// plugin whose recorded calls are replayed.
    plugin: PathBuf,
    /// The store the runs are in: `sqlite:PATH` (read while a server may
    /// run on it) or `postgres://...`.
    #[arg(long, value_name = "URL")]
    store: StoreUrl,
    /// Look at the last N finished runs, the newest first.
    #[arg(long, value_name = "N", default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    last: u32,
    /// Only runs of this flow.
    #[arg(long, value_name = "FLOW")]
    flow: Option<String>,
    /// Only this step: its id, or its path in the record (`lines[3].price`).
    #[arg(long, value_name = "STEP")]
    step: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: ReplayArgs) -> Result<(), Failure> {
    let store = open(&args.store).await?;
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let plugin = host.load(&args.plugin).await.map_err(Failure::usage)?;
    let mut selection = Selection::new(plugin.name());
    selection.last_runs = args.last as usize;
    selection.flow = args.flow;
    selection.step = args.step;
    let collected = collect(store.as_ref(), &selection)
        .await
        .map_err(|e| Failure::failed(format!("{}: {e}", args.store)))?;
    let report = replay(&host, &plugin, collected).await;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(Failure::failed)?;
        println!("{json}");
    } else {
        print!("{}", text(&report));
    }
    let summary = &report.summary;
    match summary.changed() {
        0 => Ok(()),
        n => Err(Failure::failed(format!(
            "{n} of {} replayed calls of `{}` changed",
            summary.replayed, report.plugin
        ))),
    }
}

/// Opens the store to read it. It must exist; `memory` would be empty.
async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, Failure> {
    let opened = match url {
        StoreUrl::Sqlite(path) if !path.exists() => {
            return Err(Failure::usage(format!("--store {url}: no such store")));
        }
        StoreUrl::Sqlite(path) => SqliteStore::open_reader(path)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        StoreUrl::Postgres(_) => flowhost::store::open(url, &Default::default()).await,
        _ => {
            return Err(Failure::usage(format!(
                "--store {url}: a memory store lives only inside the server that made it; use --store sqlite:PATH"
            )));
        }
    };
    opened.map_err(|e| Failure::usage(format!("--store {url}: {e}")))
}

/// A line per call (with its differences below it), then the summary.
fn text(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for call in &report.calls {
        let _ = match &call.verdict {
            Verdict::Same => writeln!(out, "{}: same", call.site),
            Verdict::Different { differences, more } => {
                let _ = writeln!(out, "{}: different", call.site);
                for d in differences {
                    let _ = writeln!(out, "  {d}");
                }
                match more {
                    0 => Ok(()),
                    n => writeln!(out, "  ... and {n} more"),
                }
            }
            Verdict::NowFailing { error } => writeln!(
                out,
                "{}: now failing: {}: {}",
                call.site, error.kind, error.message
            ),
            Verdict::NowSucceeding { recorded_error } => writeln!(
                out,
                "{}: now succeeding (it failed with {}: {})",
                call.site, recorded_error.kind, recorded_error.message
            ),
            _ => writeln!(out, "{}: {}", call.site, call.verdict.word()),
        };
    }
    for skipped in &report.skipped {
        let _ = writeln!(out, "{}: {}", skipped.site, skipped.reason);
    }
    let _ = writeln!(out, "{}", report.summary);
    out
}
