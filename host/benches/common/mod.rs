//! What every bench shares: building the plugins, the runtime, the 1 KB
//! order input, percentiles and units. Each bench uses only some of it.
#![allow(dead_code)]

pub(crate) mod http_load;
pub(crate) mod serve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// Runs `plugins/<script>` from the repository root and returns
/// `plugins/dist`.
pub(crate) fn build_plugins(script: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = std::process::Command::new("bash")
        .arg(root.join("plugins").join(script))
        .status()
        .unwrap_or_else(|e| panic!("run plugins/{script}: {e}"));
    assert!(status.success(), "plugins/{script} failed");
    root.join("plugins/dist")
}

/// A multi-threaded tokio runtime with every driver enabled.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A 3-step sequence of the echo plugin: the server benches' flow.
pub(crate) const CHAIN: &str = "\
flow: chain
steps:
  - {id: one, plugin: echo}
  - {id: two, plugin: echo}
  - {id: three, plugin: echo}
";

/// An order of 24 items, about 1 KB of JSON.
pub(crate) fn input_1k() -> Value {
    let items: Vec<_> = (0..24)
        .map(|i| json!({"sku": format!("SKU-{i:04}"), "qty": i, "price": 9.99}))
        .collect();
    json!({"id": "order-1", "customer": "c-42", "items": items})
}

/// Every `.wasm` file under `dir`, recursively, as the host lists a plugins
/// folder.
pub(crate) fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let files = flowhost::scan_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    files.into_values().collect()
}

/// The middle sample.
pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The sample below which 99% fall.
pub(crate) fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 99 / 100]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Resident set size of this process in KiB (Linux), 0 elsewhere.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
