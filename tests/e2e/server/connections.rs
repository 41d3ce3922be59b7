//! Slow and idle clients: a connection that does not send its request
//! headers in time is closed, and open connections are bounded (the excess
//! waits), with one log line when the bound is reached.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Whether this run is one of the durable-store reruns of the server tests:
/// connection handling does not touch the store, and these tests hold
/// thousands of file descriptors, so they run once, on the memory store.
fn store_rerun() -> bool {
    std::env::var_os("FLOWHOST_TEST_STORE").is_some()
}

/// Reads until the peer closes (or resets) the connection; what it sent.
async fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    if store_rerun() {
        return;
    }
    let timeout = Duration::from_secs(1);
    let s = Served::start(
        &["testing/echo"],
        &[("greet", GREET)],
        ServerConfig {
            header_read_timeout: timeout,
            max_connections: 20_000,
            ..config()
        },
    )
    .await;
    // Each connection takes a descriptor here and one in the server (this
    // same process), and other tests run alongside: keep a margin.
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let n = 5000.min((soft.saturating_sub(2000) / 2) as usize);
    println!("{n} half-sent requests (descriptor limit {soft})");
    assert!(n >= 100, "too few file descriptors for this test: {soft}");

    let sent = Instant::now();
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(s.addr).await.expect("connect");
        stream
            .write_all(b"GET /flows HTTP/1.1\r\nHost: flowhost\r\nX-Slow: ")
            .await
            .unwrap();
        readers.push(tokio::spawn(until_closed(stream)));
    }
    // While they hang, others are answered.
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.post("/flows/greet/runs", r#"{"name": "Ada"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let deadline = timeout + Duration::from_secs(20);
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for reader in readers {
        let left = deadline.saturating_sub(sent.elapsed());
        let got = tokio::time::timeout(left, reader)
            .await
            .unwrap_or_else(|_| {
                panic!("a half-sent request is still open {deadline:?} after it was sent")
            })
            .unwrap();
        let first = String::from_utf8_lossy(&got);
        let first = first.lines().next().unwrap_or("(nothing)").to_string();
        *answers.entry(first).or_default() += 1;
    }
    println!(
        "all {n} closed {:?} after they were sent; they were answered: {answers:?}",
        sent.elapsed()
    );
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_bounded_and_the_bound_is_logged_once() {
    if store_rerun() {
        return;
    }
    let (dirs, plugins, flows) = folders(&["testing/echo"], &[("greet", GREET)]);
    let toml = dirs.path().join("flowhost.toml");
    std::fs::write(
        &toml,
        "max_connections = 4\nheader_read_timeout = \"60s\"\n",
    )
    .unwrap();
    let (mut child, addr, _lines_before, lines) = crate::support::serve_lines(
        flowhost()
            .args(["serve", "--listen", "127.0.0.1:0", "--store", "memory"])
            .arg("--config")
            .arg(&toml)
            .arg("--plugins")
            .arg(&plugins)
            .arg("--flows")
            .arg(&flows)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null()),
    );
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Past the bound: these wait, unanswered, however many they are.
    let request = b"GET /healthz HTTP/1.1\r\nHost: flowhost\r\nConnection: close\r\n\r\n";
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        waiting.push(tokio::spawn(until_closed(stream)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "a connection past the bound was served"
    );
    // Once the idle ones close, every waiting one is answered.
    drop(idle);
    for w in waiting {
        let got = tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("a waiting connection is answered once others close")
            .unwrap();
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    }
    crate::support::sigterm(&child);
    let status = child.wait().unwrap();
    let logged: Vec<String> = lines.iter().collect();
    assert!(status.success(), "{}", logged.join("\n"));
    let warned: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("the connection bound is reached"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", logged.join("\n"));
    assert!(warned[0].contains("max_connections=4"), "{}", warned[0]);
}
