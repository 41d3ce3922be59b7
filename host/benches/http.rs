//! Outbound HTTP from a step: 100 sequential requests from one call to a
//! loopback server, over the host's keep-alive pool against one connection
//! per request (pooling off, `Config::http_max_idle_per_host(0)`), printed
//! side by side with the ratio and the connections each made.
//!
//! Run with `cargo bench -p flowhost --bench http` (release). It runs
//! `plugins/build.sh` first. `FLOWHOST_BENCH_QUICK=1` takes 10 requests and
//! 2 rounds, to check it runs.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{median, ms};
use flowhost::{CallOptions, Config, Context, Grants, Host};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

fn main() {
    let dist = common::build_plugins("build.sh");
    let quick = std::env::var_os("FLOWHOST_BENCH_QUICK").is_some();
    let (requests, rounds) = if quick { (10, 2) } else { (100, 20) };
    let wasm = dist.join("testing/http-fetch.wasm");
    common::runtime().block_on(async {
        let (addr, accepted) = server().await;
        let pooled = measure(Config::default(), &wasm, addr, &accepted, requests, rounds).await;
        let unpooled = measure(
            Config::default().http_max_idle_per_host(0),
            &wasm,
            addr,
            &accepted,
            requests,
            rounds,
        )
        .await;
        println!(
            "{requests} sequential GETs from one step to a loopback server: median of {rounds} calls, connections over {} calls",
            rounds + 1
        );
        println!("{:<28} {:>10} {:>17} {:>12}", "", "call (ms)", "per request (µs)", "connections");
        for (name, m) in [("pooled (keep-alive)", &pooled), ("one connection per request", &unpooled)] {
            println!(
                "{name:<28} {:>10.2} {:>17.1} {:>12}",
                ms(m.call),
                m.call.as_secs_f64() * 1e6 / requests as f64,
                m.connections
            );
        }
        println!(
            "pooled is {:.2}x faster",
            unpooled.call.as_secs_f64() / pooled.call.as_secs_f64()
        );
    });
}

struct Measured {
    /// The median call.
    call: Duration,
    /// Connections the server accepted over every call, warm-up included.
    connections: usize,
}

/// `rounds` calls of `requests` sequential GETs each, after one warm-up call.
async fn measure(
    config: Config,
    wasm: &std::path::Path,
    addr: SocketAddr,
    accepted: &AtomicUsize,
    requests: usize,
    rounds: usize,
) -> Measured {
    let host = Host::new(config).unwrap();
    let plugin = host.load(wasm).await.unwrap();
    let urls: Vec<String> = (0..requests)
        .map(|i| format!("http://{addr}/{i}"))
        .collect();
    let input = serde_json::json!({ "urls": urls }).to_string();
    let options = CallOptions {
        grants: Grants {
            http: vec![addr.to_string().parse().unwrap()],
            ..Grants::default()
        },
        ..CallOptions::default()
    };
    let ctx = Context::direct("http-fetch");
    let mut calls = Vec::new();
    let before = accepted.load(Ordering::SeqCst);
    for round in 0..=rounds {
        let started = Instant::now();
        let report = host.call_with(&plugin, &ctx, &input, &options).await;
        let took = started.elapsed();
        let out = report
            .result
            .unwrap_or_else(|e| panic!("the call failed: {e}"));
        assert!(!out.contains("\"error\""), "a request failed: {out}");
        // Round 0 warms up (and opens the pool's connection).
        if round > 0 {
            calls.push(took);
        }
    }
    let connections = accepted.load(Ordering::SeqCst) - before;
    Measured {
        call: median(calls),
        connections,
    }
}

/// A keep-alive HTTP/1.1 server on loopback answering `ok`, counting the
/// connections it accepts.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, accepted)
}
