//! `flowhost serve` under load, over real HTTP on loopback: throughput and
//! latency, a hostile neighbour's effect on them, and memory over 100,000 runs.
//!
//! Run with `cargo bench -p flowhost --bench server` (plugins are built
//! first; `FLOWHOST_BENCH_QUICK=1` runs every phase 50 times shorter). The server runs in-process with the default settings; the load
//! clients are tokio tasks on keep-alive HTTP/1.1 connections (hyper's client).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http_load::{Limit, load};
use common::{input_1k, rss_kib};
use flowhost::Host;
use flowhost::server::{Server, ServerConfig};

/// Clients of the flow under test.
const CLIENTS: usize = 16;
/// Clients of the hostile flow.
const HOSTILE_CLIENTS: usize = 4;
/// Length of each timed phase.
const PHASE: Duration = Duration::from_secs(10);
/// Runs of the memory phase, and how often RSS is printed.
const MEMORY_RUNS: usize = 100_000;
const MEMORY_EVERY: usize = 20_000;
/// `FLOWHOST_BENCH_QUICK=1` divides every phase by this (a smoke test).
const QUICK: u32 = 50;
/// Clients of the memory phase (within workers + queue capacity, so no 429s).
const MEMORY_CLIENTS: usize = 32;

/// A busy loop stopped by its 100 ms deadline (the fuel would last far longer).
const HOSTILE: &str = "\
flow: hostile
steps:
  - id: spin
    plugin: busy-loop
    timeout: 100ms
    limits: {fuel: 1000000000000}
";

fn main() {
    let dist = common::build_plugins("build.sh");
    let dirs = tempfile::tempdir().unwrap();
    let plugins = dirs.path().join("plugins");
    let flows = dirs.path().join("flows");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&flows).unwrap();
    for (from, to) in [
        ("testing/echo.wasm", "echo.wasm"),
        ("hostile/busy-loop.wasm", "busy-loop.wasm"),
    ] {
        std::fs::copy(dist.join(from), plugins.join(to)).unwrap();
    }
    std::fs::write(flows.join("chain.yaml"), common::CHAIN).unwrap();
    std::fs::write(flows.join("hostile.yaml"), HOSTILE).unwrap();

    let rt = common::runtime();
    let quick = std::env::var_os("FLOWHOST_BENCH_QUICK").is_some();
    let scale = if quick { QUICK } else { 1 };
    let phase = PHASE / scale;
    let memory_runs = MEMORY_RUNS / scale as usize;
    let memory_every = MEMORY_EVERY / scale as usize;
    rt.block_on(async {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerConfig::default()
        };
        let host = Host::new(config.host_config()).unwrap();
        let server = Server::start(host, &plugins, &flows, config.clone())
            .await
            .expect("server starts");
        let addr = server.addr();
        let input = Bytes::from(input_1k().to_string());
        let empty = Bytes::from_static(b"{}");
        println!(
            "flowhost serve on {addr}: {} workers, queue {}, {} CPUs; 3-step echo flow, {} B input",
            config.workers,
            config.queue_capacity,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            input.len()
        );

        // Warm up: connections, instance pool, caches.
        load(
            addr,
            "/flows/chain/runs",
            &input,
            CLIENTS,
            Limit::Runs(2_000),
        )
        .await;

        let quiet = load(
            addr,
            "/flows/chain/runs",
            &input,
            CLIENTS,
            Limit::Time(phase),
        )
        .await;
        let (noisy, hostile) = tokio::join!(
            load(
                addr,
                "/flows/chain/runs",
                &input,
                CLIENTS,
                Limit::Time(phase)
            ),
            load(
                addr,
                "/flows/hostile/runs",
                &empty,
                HOSTILE_CLIENTS,
                Limit::Time(phase)
            ),
        );

        println!();
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>9} {:>7}",
            "phase", "runs", "runs/s", "p50 ms", "p99 ms", "errors"
        );
        quiet.row(&format!("quiet ({CLIENTS} clients)"));
        noisy.row(&format!("beside hostile ({CLIENTS} clients)"));
        hostile.row(&format!("hostile busy-loop ({HOSTILE_CLIENTS} clients)"));
        let ratio = noisy.p(0.99).as_secs_f64() / quiet.p(0.99).as_secs_f64();
        println!(
            "p99 beside a hostile neighbour / quiet p99: {ratio:.2}x (target <= 2x: {})",
            if ratio <= 2.0 { "met" } else { "MISSED" }
        );

        println!();
        println!("memory over {memory_runs} runs ({MEMORY_CLIENTS} clients):");
        let before = rss_kib();
        println!("  {:>7} runs  RSS {:>8.1} MiB", 0, mib(before));
        let mut done = 0;
        let started = Instant::now();
        while done < memory_runs {
            let batch = memory_every.min(memory_runs - done);
            let stats = load(
                addr,
                "/flows/chain/runs",
                &input,
                MEMORY_CLIENTS,
                Limit::Runs(batch),
            )
            .await;
            done += batch;
            println!(
                "  {done:>7} runs  RSS {:>8.1} MiB  ({} errors)",
                mib(rss_kib()),
                stats.errors
            );
        }
        let after = rss_kib();
        println!(
            "  growth: {:+.1} MiB over {memory_runs} runs ({:.0} runs/s)",
            mib(after) - mib(before),
            memory_runs as f64 / started.elapsed().as_secs_f64()
        );

        let report = server.shutdown().await;
        println!(
            "\nshutdown: {} drained, {} cancelled running, {} cancelled queued",
            report.drained,
            report.cancelled_running.len(),
            report.cancelled_queued.len()
        );
    });
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
