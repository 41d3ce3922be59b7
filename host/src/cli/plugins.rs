//! `flowhost plugins DIR`: load every plugin in a folder and list them with
//! their versions, sizes, compile times and errors.

use std::path::PathBuf;

use flowhost::{EntryStatus, Host, LivePlugins};

use super::{Failure, cache};

/// Arguments of `flowhost plugins`.
#[derive(clap::Args)]
pub(crate) struct PluginsArgs {
    /// The plugins folder (searched recursively; a plugin's name is its file stem).
    dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: cache::CacheFlags,
}

/// Exit status 1 when any plugin failed to load.
pub(crate) async fn run(args: PluginsArgs) -> Result<(), Failure> {
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let live = LivePlugins::load(&host, &args.dir)
        .await
        .map_err(Failure::usage)?;
    let statuses = live.statuses().await;
    if args.json {
        let json = serde_json::to_string_pretty(&statuses).map_err(Failure::failed)?;
        println!("{json}");
    } else {
        print!("{}", table(&statuses));
    }
    let failed = statuses.iter().filter(|s| s.error.is_some()).count();
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} plugin(s) in {} failed to load",
            args.dir.display()
        )));
    }
    Ok(())
}

/// The plugin list as a text table.
pub(crate) fn table(statuses: &[EntryStatus]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "VERSION".into(),
        "HASH".into(),
        "SIZE".into(),
        "COMPILE".into(),
        "ERROR".into(),
    ]];
    for s in statuses {
        let compile = match (s.load_ms, s.cached) {
            (Some(ms), true) => format!("{ms:.1} ms (cached)"),
            (Some(ms), false) => format!("{ms:.1} ms"),
            (None, _) => "-".into(),
        };
        rows.push([
            s.name.clone(),
            s.version.map_or("-".into(), |v| v.to_string()),
            s.hash
                .as_deref()
                .map_or("-".into(), |h| h[..12.min(h.len())].to_string()),
            s.size.map_or("-".into(), |b| {
                bytesize::ByteSize(b).display().iec().to_string()
            }),
            compile,
            s.error.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
