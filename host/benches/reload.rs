//! Hot reload latency and warm-cache startup.
//!
//! Run with `cargo bench -p flowhost --bench reload` (plugins are built first).
//!
//! - Reload latency: from the end of a file write to the first call served by
//!   the new version, over 50 reloads of a small plugin, debounce included
//!   (target: p99 < 300 ms). The two versions alternate, so after the first
//!   two loads every reload is served by the compile cache, as in `flowhost dev`.
//! - Startup: loading a folder of plugins with an empty compile cache, then
//!   with a warm one (target: at least 20x faster).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ms;
use flowhost::{Config, Context, Host, LivePlugins, WatchOptions};

fn main() {
    let dist = common::build_plugins("build.sh");
    common::runtime().block_on(async {
        reload_latency(&dist).await;
        startup(&dist).await;
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn reload_latency(dist: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let versions = [
        (
            std::fs::read(dist.join("testing/echo.wasm")).unwrap(),
            r#"{"n":1}"#,
        ),
        (
            std::fs::read(dist.join("testing/counter.wasm")).unwrap(),
            r#"{"calls":1}"#,
        ),
    ];
    let path = dir.join("x.wasm");
    std::fs::write(&path, &versions[0].0).unwrap();
    let host = Host::new(Config::default().cache(Some(tmp.path().join("cache")))).unwrap();
    let live = LivePlugins::open(&host, &dir, WatchOptions::default())
        .await
        .unwrap();
    let ctx = Context::direct("x");

    let mut samples = Vec::new();
    for i in 1..=50 {
        let (bytes, want) = &versions[i % 2];
        let tmp_file = dir.join(".x.wasm.tmp");
        std::fs::write(&tmp_file, bytes).unwrap();
        std::fs::rename(&tmp_file, &path).unwrap();
        let written = Instant::now();
        loop {
            let p = live.get("x").unwrap();
            let out = host.call(&p, &ctx, r#"{"n":1}"#).await.unwrap();
            if out == *want {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(30),
                "reload {i} never served"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(written.elapsed());
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "reload latency (write -> first call on the new version, 50 reloads, 100 ms debounce): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 300 ms)",
        ms(p50),
        ms(p99),
        ms(*samples.last().unwrap())
    );
}

async fn startup(dist: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let files = common::wasm_files(dist);
    let mut total = 0u64;
    for file in &files {
        // Flattened: hostile and testing plugins have distinct names.
        let dest = dir.join(file.file_name().unwrap());
        if !dest.exists() {
            total += std::fs::copy(file, dest).unwrap();
        }
    }
    let cache = tmp.path().join("cache");
    let time_load = |label: &'static str| {
        let (dir, cache) = (dir.clone(), cache.clone());
        async move {
            let host = Host::new(Config::default().cache(Some(cache))).unwrap();
            let started = Instant::now();
            let live = LivePlugins::load(&host, &dir).await.unwrap();
            let took = started.elapsed();
            let statuses = live.statuses().await;
            assert!(
                statuses.iter().all(|s| s.error.is_none()),
                "{label}: a plugin failed"
            );
            (took, statuses.len(), host.compile_count())
        }
    };
    let (cold, n, compiled) = time_load("cold").await;
    let (warm, _, recompiled) = time_load("warm").await;
    assert_eq!(recompiled, 0, "the warm start compiled nothing");
    println!(
        "startup, {n} plugins ({:.1} MiB): cold cache {:.1} ms ({compiled} compiled), warm cache {:.1} ms, {:.1}x (target >= 20x)",
        total as f64 / (1 << 20) as f64,
        ms(cold),
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
