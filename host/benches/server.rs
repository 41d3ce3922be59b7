//! `flowhost serve` under load, over real HTTP on loopback: throughput and
//! latency, a hostile neighbour's effect on them, and memory over 100,000 runs.
//!
//! Run with `cargo bench -p flowhost --bench server` (plugins are built
//! first; `FLOWHOST_BENCH_QUICK=1` runs every phase 50 times shorter). The server runs in-process with the default settings; the load
//! clients are tokio tasks on keep-alive HTTP/1.1 connections (hyper's client).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{input_1k, rss_kib};
use flowhost::Host;
use flowhost::server::{Server, ServerConfig};
use http::Request;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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

const CHAIN: &str = "\
flow: chain
steps:
  - {id: one, plugin: echo}
  - {id: two, plugin: echo}
  - {id: three, plugin: echo}
";

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
    std::fs::write(flows.join("chain.yaml"), CHAIN).unwrap();
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

/// When a load phase ends.
#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Runs(usize),
}

/// Latencies of the runs answered `200`, and everything else counted as errors.
struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Stats {
    fn p(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }

    fn row(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<34} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>7}",
            self.latencies.len(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            ms(self.p(0.5)),
            ms(self.p(0.99)),
            self.errors
        );
    }
}

/// `clients` tasks, each on its own keep-alive connection, POSTing `body` to
/// `path` back to back until `limit`.
async fn load(addr: SocketAddr, path: &str, body: &Bytes, clients: usize, limit: Limit) -> Stats {
    let started = Instant::now();
    let issued = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (path, body, issued) = (path.to_string(), body.clone(), issued.clone());
            tokio::spawn(async move {
                let mut conn: Option<Conn> = None;
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let more = match limit {
                        Limit::Time(d) => started.elapsed() < d,
                        Limit::Runs(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    };
                    if !more {
                        break;
                    }
                    let t = Instant::now();
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::open(addr).await {
                            Ok(c) => conn.insert(c),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        },
                    };
                    match c.post(&path, &body).await {
                        Ok((200, _)) => latencies.push(t.elapsed()),
                        Ok((status, _)) => {
                            errors += 1;
                            if status == 429 {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut stats = Stats {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        stats.latencies.extend(latencies);
        stats.errors += errors;
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}

/// A keep-alive HTTP/1.1 connection: hyper's client on one TCP stream, one
/// request at a time, as the hand-written client before it (no pool, no
/// per-request connection).
struct Conn(SendRequest<Full<Bytes>>);

type ClientError = Box<dyn std::error::Error + Send + Sync>;

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // Drives the connection until the sender is dropped.
        tokio::spawn(connection);
        Ok(Conn(sender))
    }

    /// POSTs a JSON body; returns the status and the body.
    async fn post(&mut self, path: &str, body: &Bytes) -> Result<(u16, Bytes), ClientError> {
        self.0.ready().await?;
        let request = Request::post(path)
            .header(HOST, "bench")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let response = self.0.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
