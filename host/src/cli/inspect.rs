//! `flowhost inspect`: what a step component is and what it needs.

use std::path::PathBuf;

use flowhost::Host;
use serde_json::json;

use super::Failure;

/// Arguments of `flowhost inspect`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// The step component (`.wasm`).
    plugin: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: super::cache::CacheFlags,
}

pub(crate) async fn run(args: InspectArgs) -> Result<(), Failure> {
    let host = Host::new(args.cache.config()).map_err(Failure::failed)?;
    let plugin = host.load(&args.plugin).await.map_err(Failure::usage)?;
    let meta = host
        .describe(&plugin)
        .await
        .map_err(|e| Failure::failed(format!("describe failed: {e}")))?;
    let compile_ms = plugin.compile_time().as_secs_f64() * 1000.0;
    if args.json {
        let value = json!({
            "name": meta.name, "version": meta.version, "description": meta.description,
            "file": plugin.path(), "size": plugin.size(), "sha256": plugin.hash(),
            "compile_ms": compile_ms, "imports": plugin.imports(), "exports": plugin.exports(),
        });
        println!("{value:#}");
        return Ok(());
    }
    println!("{} {}: {}", meta.name, meta.version, meta.description);
    println!("file:         {}", plugin.path().display());
    println!(
        "size:         {}",
        bytesize::ByteSize(plugin.size()).display().iec()
    );
    println!("sha256:       {}", plugin.hash());
    println!("compile time: {compile_ms:.1} ms");
    println!("exports:      {}", plugin.exports().join(", "));
    println!("imports:");
    for import in plugin.imports() {
        println!("  {import}");
    }
    Ok(())
}
