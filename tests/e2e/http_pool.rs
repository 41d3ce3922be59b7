//! Outbound HTTP from steps over the host's keep-alive pool: connections are
//! reused across requests and calls, one step's requests run concurrently,
//! a denied host fails only its own request, and a call's deadline closes
//! what it had in flight. (The allow-list itself is tested in `grants.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowhost::{CallOptions, Config, Context, ErrorKind, Grants, Host, Limits};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::{call, wasm};

/// A keep-alive HTTP/1.1 server on loopback that answers `ok` to every
/// request after `delay`, and counts the connections it accepted.
async fn counting_server(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(move |_req| async move {
                tokio::time::sleep(delay).await;
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

fn grant(addrs: &[SocketAddr]) -> CallOptions {
    CallOptions {
        grants: Grants {
            http: addrs
                .iter()
                .map(|a| a.to_string().parse().unwrap())
                .collect(),
            ..Grants::default()
        },
        ..CallOptions::default()
    }
}

fn input(urls: &[String], all_at_once: bool) -> String {
    json!({ "urls": urls, "all_at_once": all_at_once }).to_string()
}

/// The answers of an http-fetch output.
fn answers(output: &str) -> Vec<Value> {
    let out: Value = serde_json::from_str(output).unwrap();
    out["answers"].as_array().unwrap().clone()
}

fn all_ok(output: &str, n: usize) {
    let answers = answers(output);
    assert_eq!(answers.len(), n, "{output}");
    for a in &answers {
        assert_eq!(a["status"], 200, "{output}");
        assert_eq!(a["body"], "ok", "{output}");
    }
}

/// Two calls of ten requests each through `host`; the connections the server accepted.
async fn twenty_requests(host: &Host) -> usize {
    let (addr, accepted) = counting_server(Duration::ZERO).await;
    let plugin = host.load(wasm("testing/http-fetch")).await.unwrap();
    let urls: Vec<String> = (0..10).map(|i| format!("http://{addr}/{i}")).collect();
    for _ in 0..2 {
        let report = host
            .call_with(
                &plugin,
                &Context::direct("http-fetch"),
                &input(&urls, false),
                &grant(&[addr]),
            )
            .await;
        all_ok(&report.result.unwrap(), 10);
    }
    accepted.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_steps_reuse_pooled_connections_across_calls() {
    let pooled = twenty_requests(&Host::new(Config::default()).unwrap()).await;
    assert!(
        (1..=2).contains(&pooled),
        "20 sequential requests over 2 calls took {pooled} connections"
    );
    let unpooled = Host::new(Config::default().http_max_idle_per_host(0)).unwrap();
    let dialed = twenty_requests(&unpooled).await;
    assert_eq!(dialed, 20, "with pooling off every request dials its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_requests_from_one_step_run_concurrently() {
    let (addr, _) = counting_server(Duration::from_millis(100)).await;
    let urls: Vec<String> = (0..10).map(|i| format!("http://{addr}/slow/{i}")).collect();
    // Compile the step first, so only the call is timed.
    crate::support::plugin("testing/http-fetch").await;
    let started = Instant::now();
    let report = call(
        "testing/http-fetch",
        &input(&urls, true),
        "{}",
        grant(&[addr]),
    )
    .await;
    let took = started.elapsed();
    all_ok(&report.result.unwrap(), 10);
    assert!(
        took < Duration::from_millis(800),
        "ten 100 ms requests took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_host_fails_only_its_own_request() {
    let (addr, _) = counting_server(Duration::ZERO).await;
    let (other, other_accepted) = counting_server(Duration::ZERO).await;
    let urls = [
        format!("http://{addr}/a"),
        format!("http://{other}/not-granted"),
        format!("http://{addr}/b"),
    ];
    let out = call(
        "testing/http-fetch",
        &input(&urls, true),
        "{}",
        grant(&[addr]),
    )
    .await
    .result
    .unwrap();
    let answers = answers(&out);
    assert_eq!(answers[0]["status"], 200, "{out}");
    assert_eq!(answers[2]["status"], 200, "{out}");
    let error = answers[1]["error"].as_str().unwrap_or_default();
    assert!(error.contains("`http` grant"), "{out}");
    assert_eq!(other_accepted.load(Ordering::SeqCst), 0, "nothing dialed");
}

/// A server that accepts one connection and never answers; it ends when
/// the client closes the connection.
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    (addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_own_timeout_fails_it_before_the_calls_deadline() {
    let (addr, _server) = silent_server().await;
    let input = json!({"urls": [format!("http://{addr}/slow")], "timeout_ms": 200}).to_string();
    let started = Instant::now();
    let out = call("testing/http-fetch", &input, "{}", grant(&[addr]))
        .await
        .result
        .unwrap();
    let took = started.elapsed();
    let error = answers(&out)[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("ConnectionReadTimeout"), "{out}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_deadline_closes_its_request_in_flight() {
    let (addr, server) = silent_server().await;
    let options = CallOptions {
        limits: Some(Limits {
            timeout: Duration::from_millis(500),
            ..Limits::default()
        }),
        ..grant(&[addr])
    };
    let urls = [format!("http://{addr}/hangs")];
    let err = call("testing/http-fetch", &input(&urls, false), "{}", options)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadline, "{err}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the connection stayed open after the call's deadline")
        .unwrap();
}
