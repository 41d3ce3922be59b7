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
    let imports = plugin.imports();
    let capabilities = capabilities(&imports);
    if args.json {
        let value = json!({
            "name": meta.name, "version": meta.version, "description": meta.description,
            "file": plugin.path(), "size": plugin.size(), "sha256": plugin.hash(),
            "compile_ms": compile_ms, "capabilities": capabilities,
            "imports": imports, "exports": plugin.exports(),
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
    println!("capabilities: {}", capabilities.join(", "));
    println!("exports:      {}", plugin.exports().join(", "));
    println!("imports:");
    for import in imports {
        println!("  {import}");
    }
    Ok(())
}

/// What a component may reach, named as the contract and the grants name it, in
/// a fixed order: our interfaces with the contract version the component was
/// built against (`host 0.1.0`, `sql 0.1.2`), outbound HTTP with its WASI
/// version, then WASI families by name. Plumbing (`types`, `wasi:io`,
/// `wasi:cli/exit`) is left out; anything unknown is shown as its package.
fn capabilities(imports: &[String]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = imports
        .iter()
        .filter_map(|import| capability(import))
        .collect();
    found.sort();
    found.dedup();
    found.into_iter().map(|(_, name)| name).collect()
}

/// Where each known capability goes in the list, by name.
const ORDER: [&str; 10] = [
    "host",
    "sql",
    "kv",
    "http",
    "wasi:http",
    "filesystem",
    "environment",
    "sockets",
    "clocks",
    "random",
];

/// One import as a capability and its place in the list; `None` for plumbing.
fn capability(import: &str) -> Option<(usize, String)> {
    let (path, version) = match import.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (import, None),
    };
    let (package, interface) = path.split_once('/').unwrap_or((path, ""));
    let (name, versioned) = match (package, interface) {
        ("flowhost:step", "types") | ("wasi:io", _) | ("wasi:cli", "exit") => return None,
        ("flowhost:step", interface) => (interface, true),
        ("wasi:http", _) => ("wasi:http", true),
        ("wasi:filesystem", _) => ("filesystem", false),
        ("wasi:cli", "environment") => ("environment", false),
        ("wasi:cli", _) => ("stdio", false),
        ("wasi:sockets", _) => ("sockets", false),
        ("wasi:clocks", _) => ("clocks", false),
        ("wasi:random", _) => ("random", false),
        (package, _) => (package, true),
    };
    // Known names in their fixed order; stdio and unknown ones after them.
    let place = ORDER.iter().position(|n| *n == name).unwrap_or(ORDER.len());
    let text = match version {
        Some(v) if versioned => format!("{name} {v}"),
        _ => name.to_string(),
    };
    Some((place, text))
}

#[cfg(test)]
mod tests {
    use super::capabilities;

    fn caps(imports: &[&str]) -> Vec<String> {
        let imports: Vec<String> = imports.iter().map(|s| s.to_string()).collect();
        capabilities(&imports)
    }

    #[test]
    fn a_0_1_0_step_shows_the_host_it_was_built_against() {
        assert_eq!(
            caps(&[
                "flowhost:step/host@0.1.0",
                "flowhost:step/types@0.1.0",
                "wasi:io/streams@0.2.6",
                "wasi:cli/exit@0.2.6",
                "wasi:cli/stdout@0.2.6",
                "wasi:cli/environment@0.2.6",
            ]),
            ["host 0.1.0", "environment", "stdio"]
        );
    }

    #[test]
    fn sql_kv_and_http_come_first_with_their_versions() {
        assert_eq!(
            caps(&[
                "wasi:random/insecure-seed@0.2.12",
                "wasi:http/types@0.2.12",
                "wasi:http/outgoing-handler@0.2.12",
                "flowhost:step/kv@0.1.2",
                "wasi:filesystem/preopens@0.2.12",
                "wasi:sockets/tcp@0.2.9",
                "flowhost:step/sql@0.1.2",
                "flowhost:step/host@0.1.2",
                "flowhost:step/http@0.1.2",
                "wasi:clocks/wall-clock@0.2.12",
            ]),
            [
                "host 0.1.2",
                "sql 0.1.2",
                "kv 0.1.2",
                "http 0.1.2",
                "wasi:http 0.2.12",
                "filesystem",
                "sockets",
                "clocks",
                "random",
            ]
        );
    }

    #[test]
    fn types_alone_need_nothing_and_unknown_imports_show_their_package() {
        assert!(caps(&["flowhost:step/types@0.1.1"]).is_empty());
        assert_eq!(
            caps(&["wasi:keyvalue/store@0.2.0-draft", "log"]),
            ["log", "wasi:keyvalue 0.2.0-draft"]
        );
    }
}
