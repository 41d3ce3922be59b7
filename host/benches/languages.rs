//! The same step in Rust, JavaScript, Python and C: component size, cold
//! compile, warm load from the compile cache, per-call latency, fuel for one
//! 10 KB JSON transform, and memory.
//!
//! Run with `cargo bench -p flowhost --bench languages` (release). It runs
//! `plugins/build-all.sh` first, which installs a missing toolchain.
//!
//! - echo: `testing/echo` (Rust), `js-echo`, `py-echo`, `c-echo`.
//! - transform: `js-stamp`, `py-stamp`, `c-stamp` on a 10 KB object (parse,
//!   add fields, serialise; C appends a field without parsing). There is no
//!   Rust stamp step: its column reads "-".
//! - peak memory: the largest linear memory of one call's instance
//!   (`CallReport::peak_memory`).

mod common;

use std::path::Path;
use std::time::Instant;

use common::{median, ms, p99};
use flowhost::{Config, Context, Host};

struct Lang {
    name: &'static str,
    echo: &'static str,
    stamp: Option<&'static str>,
}

const LANGS: &[Lang] = &[
    Lang {
        name: "Rust",
        echo: "testing/echo",
        stamp: None,
    },
    Lang {
        name: "JavaScript",
        echo: "js/js-echo",
        stamp: Some("js/js-stamp"),
    },
    Lang {
        name: "Python",
        echo: "python/py-echo",
        stamp: Some("python/py-stamp"),
    },
    Lang {
        name: "C",
        echo: "c/c-echo",
        stamp: Some("c/c-stamp"),
    },
];

fn main() {
    let dist = common::build_plugins("build-all.sh");
    common::runtime().block_on(table(&dist));
}

fn input_10k() -> String {
    let items: Vec<_> = (0..250)
        .map(|i| serde_json::json!({"sku": format!("SKU-{i:04}"), "qty": i % 7, "price": 1.25}))
        .collect();
    let s = serde_json::json!({"id": "order-1", "customer": "c-42", "items": items}).to_string();
    assert!(
        (9_000..12_000).contains(&s.len()),
        "input is {} bytes",
        s.len()
    );
    s
}

async fn table(dist: &Path) {
    let input = input_10k();
    let cache = tempfile_dir();
    println!(
        "{:<11} {:>9} {:>11} {:>10} {:>11} {:>11} {:>14} {:>11}",
        "language",
        "size KiB",
        "compile ms",
        "warm ms",
        "call µs p50",
        "call µs p99",
        "fuel 10KB xf",
        "peak KiB"
    );
    for lang in LANGS {
        let path = dist.join(format!("{}.wasm", lang.echo));
        let size = std::fs::metadata(&path)
            .map(|m| m.len() / 1024)
            .unwrap_or(0);

        // Cold compile, filling the cache.
        let cold = Host::new(Config::new().cache(Some(cache.clone()))).unwrap();
        let started = Instant::now();
        let echo = cold.load(&path).await.unwrap();
        let compile = started.elapsed();

        // Warm: a new host reading the same cache.
        let warm_host = Host::new(Config::new().cache(Some(cache.clone()))).unwrap();
        let started = Instant::now();
        let _warm = warm_host.load(&path).await.unwrap();
        let warm = started.elapsed();

        // Memory: the largest linear memory of one call's instance.
        let ctx = Context::direct(echo.name());
        let first = cold
            .call_with(&echo, &ctx, &input, &Default::default())
            .await;
        first.result.unwrap();
        let peak_kib = first.peak_memory / 1024;

        // Per-call latency (fresh instance per call), after a warm-up.
        for _ in 0..20 {
            cold.call(&echo, &ctx, &input).await.unwrap();
        }
        let mut times = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            cold.call(&echo, &ctx, &input).await.unwrap();
            times.push(started.elapsed());
        }
        let (p50, p99) = (median(times.clone()), p99(times));

        let fuel = match lang.stamp {
            Some(stamp) => {
                let p = cold.load(dist.join(format!("{stamp}.wasm"))).await.unwrap();
                let report = cold
                    .call_with(&p, &Context::direct(p.name()), &input, &Default::default())
                    .await;
                report.result.unwrap();
                report.fuel_used.to_string()
            }
            None => "-".to_string(),
        };
        println!(
            "{:<11} {:>9} {:>11.1} {:>10.2} {:>11.1} {:>11.1} {:>14} {:>11}",
            lang.name,
            size,
            ms(compile),
            ms(warm),
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            fuel,
            peak_kib
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowhost-bench-languages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
