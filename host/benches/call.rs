//! Per-call overhead, metering cost and compile time.
//!
//! Run with `cargo bench -p flowhost --features bench-internals --bench call`
//! (plugins are built first); the feature opens the unmetered host and the
//! live-instance probe that the baselines need.
//! Every figure is printed beside a baseline measured in the same run: a
//! native Rust function, a host without metering, a live instance.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{median, p99, us};
use flowhost::{CallOptions, Config, Context, Host, Limits, Metering, Plugin, bench};

fn main() {
    let dist = common::build_plugins("build.sh");
    common::runtime().block_on(async {
        per_call(&dist).await;
        metering(&dist).await;
        compile_times(&dist).await;
    });
}

fn input_1k() -> String {
    let s = common::input_1k().to_string();
    assert!((900..1200).contains(&s.len()), "input is {} bytes", s.len());
    s
}

async fn per_call(dist: &Path) {
    let host = Host::new(Config::default()).unwrap();
    let echo = host.load(dist.join("testing/echo.wasm")).await.unwrap();
    let input = input_1k();
    let ctx = Context::direct("echo");
    let n = 5000;

    let native: Vec<_> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let v: serde_json::Value = serde_json::from_str(std::hint::black_box(&input)).unwrap();
            std::hint::black_box(serde_json::to_string(&v).unwrap());
            t.elapsed()
        })
        .collect();

    for _ in 0..500 {
        host.call(&echo, &ctx, &input).await.unwrap();
    }
    let mut fresh = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        host.call(&echo, &ctx, &input).await.unwrap();
        fresh.push(t.elapsed());
    }
    let live = bench::live_calls(&host, &echo, &input, n).await;
    let phases = bench::phases(&host, &echo, &input, n).await;

    let (native, live, fresh_p99, fresh) = (
        median(native),
        median(live),
        p99(fresh.clone()),
        median(fresh),
    );
    println!("== per-call overhead: echo step, 1 KB JSON, {n} calls ==");
    println!(
        "native Rust echo (parse + serialise)   {:>9.2} µs  (baseline)",
        us(native)
    );
    println!(
        "live instance call                     {:>9.2} µs  {:>6.1}x native",
        us(live),
        us(live) / us(native)
    );
    println!(
        "fresh instance call (Host::call)       {:>9.2} µs  {:>6.1}x native  {:>5.1}x live  (p99 {:.2} µs)",
        us(fresh),
        us(fresh) / us(native),
        us(fresh) / us(live),
        us(fresh_p99)
    );
    let pick = |f: fn(&bench::Phases) -> Duration| median(phases.iter().map(f).collect());
    println!(
        "  phases (medians): store {:.2} µs, instantiate {:.2} µs, call {:.2} µs, drop {:.2} µs",
        us(pick(|p| p.store)),
        us(pick(|p| p.instantiate)),
        us(pick(|p| p.call)),
        us(pick(|p| p.drop))
    );
}

async fn metering(dist: &Path) {
    let spin_config = serde_json::json!({"iterations": 20_000_000}).to_string();
    let big: Vec<_> = (0..4000)
        .map(|i| serde_json::json!({"sku": format!("SKU-{i:05}"), "qty": i % 7, "price": 1.25, "tags": ["a", "b"]}))
        .collect();
    let big = serde_json::json!({ "items": big }).to_string();
    // A dependent arithmetic chain hides the fuel counter's extra
    // instructions; branchy parsing code shows what metering costs.
    let workloads = [
        (
            "spin: arithmetic chain, 20M rounds",
            "testing/spin.wasm",
            spin_config,
            "{}".to_string(),
        ),
        (
            "echo: parse a JSON document",
            "testing/echo.wasm",
            "{}".to_string(),
            big,
        ),
    ];
    let variants = [
        (
            "neither (baseline)",
            Metering {
                fuel: false,
                epochs: false,
            },
        ),
        (
            "epoch only",
            Metering {
                fuel: false,
                epochs: true,
            },
        ),
        (
            "fuel only",
            Metering {
                fuel: true,
                epochs: false,
            },
        ),
        (
            "fuel + epoch (default)",
            Metering {
                fuel: true,
                epochs: true,
            },
        ),
    ];
    let options = CallOptions {
        limits: Some(Limits {
            timeout: Duration::from_secs(600),
            ..Limits::default()
        }),
        ..CallOptions::default()
    };
    for (title, file, config, input) in workloads {
        println!(
            "== metering cost: {title} ({} KB input) ==",
            input.len() / 1024
        );
        let ctx = Context {
            config,
            ..Context::direct("bench")
        };
        let mut baseline = None;
        for (name, m) in variants {
            let host = Host::new(Config::default().benchmark_only_metering(m)).unwrap();
            let plugin = host.load(dist.join(file)).await.unwrap();
            host.call_with(&plugin, &ctx, &input, &options)
                .await
                .result
                .unwrap();
            let mut times = Vec::new();
            for _ in 0..15 {
                let t = Instant::now();
                host.call_with(&plugin, &ctx, &input, &options)
                    .await
                    .result
                    .unwrap();
                times.push(t.elapsed());
            }
            let t = median(times);
            let base = *baseline.get_or_insert(t);
            println!(
                "{name:<24} {:>9.3} ms  {:>5.2}x",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
}

async fn compile_times(dist: &Path) {
    println!("== compile time per plugin (cache miss: a fresh compile each) ==");
    let host = Host::new(Config::default()).unwrap();
    let mut files = common::wasm_files(dist);
    files.sort();
    for file in files {
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let plugin: Plugin = match host.load(&file).await {
            Ok(p) => p,
            Err(e) => {
                println!("{:<40} failed: {e}", file.display());
                continue;
            }
        };
        let rel = file.strip_prefix(dist).unwrap_or(&file);
        println!(
            "{:<36} {:>9} KiB  {:>8.1} ms",
            rel.display(),
            size / 1024,
            plugin.compile_time().as_secs_f64() * 1e3
        );
    }
}
