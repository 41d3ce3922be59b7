//! Capabilities are denied by default and granted exactly as given.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use flowhost::{CallOptions, DirGrant, DirMode, ErrorKind, Grants};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{call, dist, flowhost, run, run_flow, wasm};

fn mount(dir: &std::path::Path, mode: DirMode) -> CallOptions {
    CallOptions {
        grants: Grants {
            dirs: vec![DirGrant {
                host: dir.to_path_buf(),
                guest: Some("/data".into()),
                mode,
            }],
            ..Grants::default()
        },
        ..CallOptions::default()
    }
}

#[tokio::test]
async fn no_grant_means_no_files() {
    let config = json!({"path": "/etc/passwd"}).to_string();
    let err = call("testing/read-file", "{}", &config, CallOptions::default())
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
}

#[tokio::test]
async fn read_only_mount_reads_but_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let read = json!({"path": "/data/in.txt"}).to_string();
    let out = call(
        "testing/read-file",
        "{}",
        &read,
        mount(dir.path(), DirMode::Ro),
    )
    .await
    .result
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["contents"],
        "hello"
    );

    let write = json!({"path": "/data/out.txt", "write": "x"}).to_string();
    let err = call(
        "testing/read-file",
        "{}",
        &write,
        mount(dir.path(), DirMode::Ro),
    )
    .await
    .result
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(!dir.path().join("out.txt").exists());
}

#[tokio::test]
async fn read_write_mount_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let write = json!({"path": "/data/out.txt", "write": "written"}).to_string();
    call(
        "testing/read-file",
        "{}",
        &write,
        mount(dir.path(), DirMode::Rw),
    )
    .await
    .result
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "written"
    );
}

#[test]
fn only_allowed_env_vars_are_seen() {
    let (code, out, err) = run(flowhost()
        .args([
            "call",
            wasm("hostile/env-snoop").to_str().unwrap(),
            "--allow-env",
            "FLOWHOST_TEST_ALLOWED",
        ])
        .env("FLOWHOST_TEST_ALLOWED", "visible-value")
        .env("FLOWHOST_TEST_SECRET", "s3cr3t-value"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("visible-value"), "{out}");
    assert!(!out.contains("s3cr3t-value"), "{out}");
    assert!(!out.contains("PATH"), "{out}");
}

#[test]
fn no_env_grant_means_no_env() {
    let (code, out, err) = run(flowhost()
        .args(["call", wasm("hostile/env-snoop").to_str().unwrap()])
        .env("FLOWHOST_TEST_SECRET", "s3cr3t-value"));
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("s3cr3t-value") && !out.contains("HOME"),
        "{out}"
    );
}

/// A one-request HTTP server on `ip`: answers `200 ok` and hands back the
/// request head it received.
async fn http_server(ip: &str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let head = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed mid-head");
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    (addr, head)
}

fn http_grant(grants: &[&str]) -> CallOptions {
    CallOptions {
        grants: Grants {
            http: grants.iter().map(|g| g.parse().unwrap()).collect(),
            ..Grants::default()
        },
        ..CallOptions::default()
    }
}

/// The values of header `name` in a request head.
fn header<'h>(head: &'h str, name: &str) -> Vec<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// GETs `url` with the http-get step; returns the request head the server saw.
async fn get(url: String, options: CallOptions, server: tokio::task::JoinHandle<String>) -> String {
    let config = json!({ "url": url }).to_string();
    let out = call("testing/http-get", "{}", &config, options)
        .await
        .result
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], 200);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server got no request")
        .unwrap()
}

#[tokio::test]
async fn allowed_http_host_is_reached_with_its_host_header() {
    let (addr, server) = http_server("127.0.0.1").await;
    let head = get(
        format!("http://{addr}/orders?id=7"),
        http_grant(&[&addr.to_string()]),
        server,
    )
    .await;
    assert!(head.starts_with("GET /orders?id=7 HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(&head, "host"), [addr.to_string()], "{head}");
}

#[tokio::test]
async fn host_names_and_ipv6_addresses_are_granted_and_sent_as_host() {
    // A name grant without a port allows any port; the URL's case does not matter.
    let (addr, server) = http_server("127.0.0.1").await;
    let port = addr.port();
    let head = get(
        format!("http://LocalHost:{port}/"),
        http_grant(&["localhost"]),
        server,
    )
    .await;
    assert_eq!(
        header(&head, "host"),
        [format!("LocalHost:{port}")],
        "{head}"
    );

    let (addr, server) = http_server("::1").await;
    let port = addr.port();
    let head = get(
        format!("http://[::1]:{port}/"),
        http_grant(&[&format!("[0:0::1]:{port}")]),
        server,
    )
    .await;
    assert_eq!(header(&head, "host"), [format!("[::1]:{port}")], "{head}");
}

#[tokio::test]
async fn a_flow_step_reaches_the_host_its_allow_names() {
    let (addr, server) = http_server("127.0.0.1").await;
    let yaml = format!(
        "flow: fetch\nsteps:\n  - id: get\n    plugin: http-get\n    config: {{url: \"http://{addr}/from-flow\"}}\n    allow: {{http: [\"{addr}\"]}}\n"
    );
    let record = run_flow(&yaml, json!({})).await;
    assert_eq!(record.output_value().unwrap(), json!({"status": 200}));
    let head = server.await.unwrap();
    assert!(head.starts_with("GET /from-flow "), "{head}");
    assert_eq!(header(&head, "host"), [addr.to_string()], "{head}");
}

#[tokio::test]
async fn other_http_hosts_are_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    // The right host on another port, another host, and the right port elsewhere.
    let grants = [
        format!("127.0.0.1:{}", addr.port() + 1),
        "api.example.com".to_string(),
        format!("localhost.example:{}", addr.port()),
    ];
    for grant in grants {
        let config = json!({"url": format!("http://{addr}/")}).to_string();
        let err = call("testing/http-get", "{}", &config, http_grant(&[&grant]))
            .await
            .result
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient, "{grant}: {err}");
        assert!(
            err.message().to_lowercase().contains("denied"),
            "{grant}: {err}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
}

#[test]
fn an_http_grant_that_could_never_match_is_a_usage_error() {
    let cases = [
        (
            "http://api.example.com",
            "it has a scheme; a grant names only a host and an optional port: `api.example.com`",
        ),
        ("api.example.com/v1", "it has a path"),
        (
            "api.example.com:70000",
            "the port `70000` is not a number from 1 to 65535",
        ),
        ("::1", "an IPv6 address goes in brackets"),
    ];
    for (grant, why) in cases {
        let (code, out, err) = run(flowhost().args([
            "call",
            wasm("testing/http-get").to_str().unwrap(),
            "--allow-http",
            grant,
        ]));
        assert_eq!(code, 2, "{grant}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("--allow-http"), "names the flag: {err}");
        assert!(
            err.contains(&format!("invalid HTTP grant `{grant}`: {why}")),
            "{err}"
        );
    }
}

#[test]
fn a_flow_with_an_http_grant_that_could_never_match_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("fetch.yaml");
    std::fs::write(
        &flow,
        "flow: fetch\nsteps:\n  - id: get\n    plugin: http-get\n    allow:\n      http:\n        - api.example.com\n        - http://api.example.com\n        - \"api.example.com:0\"\n",
    )
    .unwrap();
    let (code, _, err) = run(flowhost().args([
        "check",
        flow.to_str().unwrap(),
        "--plugins",
        dist().to_str().unwrap(),
    ]));
    assert_eq!(code, 2, "{err}");
    let file = flow.display();
    assert!(
        err.contains(&format!(
            "{file}:8:11: invalid HTTP grant `http://api.example.com`: it has a scheme"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:9:11: invalid HTTP grant `api.example.com:0`: the port `0`"
        )),
        "{err}"
    );
    assert!(!err.contains(":7:"), "a valid grant is no error: {err}");
}

#[tokio::test]
async fn net_escape_reaches_no_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let input = json!({"addr": addr}).to_string();
    let out = call("hostile/net-escape", &input, "{}", CallOptions::default())
        .await
        .result
        .unwrap();
    assert!(!out.contains("\"connected\""), "{out}");
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener: {out}"
    );
}

/// Calls the http-get step on `url` with `grants`; the error, if it failed.
async fn get_err(url: &str, grants: &[&str]) -> Option<flowhost::CallError> {
    let config = json!({ "url": url }).to_string();
    call("testing/http-get", "{}", &config, http_grant(grants))
        .await
        .result
        .err()
}

#[tokio::test]
async fn user_info_in_a_url_is_denied_and_nothing_is_dialed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // The grant names `localhost`; the text before `@` names the listener.
    for url in [
        format!("http://127.0.0.1:{port}@localhost/"),
        format!("http://user:pw@localhost:{port}/"),
        format!("http://127.0.0.1:{port}@localhost:{port}/"),
    ] {
        let err = get_err(&url, &["localhost"])
            .await
            .unwrap_or_else(|| panic!("{url} was allowed"));
        assert_eq!(err.kind(), ErrorKind::Transient, "{url}: {err}");
        assert!(err.message().contains("HttpRequestDenied"), "{url}: {err}");
    }
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
}

#[tokio::test]
async fn a_url_without_a_port_is_matched_as_its_schemes_default_port() {
    // Port 80 is granted: `http://127.0.0.1/` goes there (whether anything
    // listens there or not, it is not denied), `https://` does not.
    let not_denied = |e: Option<flowhost::CallError>| {
        e.is_none_or(|e| !e.message().contains("HttpRequestDenied"))
    };
    assert!(not_denied(
        get_err("http://127.0.0.1/", &["127.0.0.1:80"]).await
    ));
    let err = get_err("https://127.0.0.1/", &["127.0.0.1:80"])
        .await
        .unwrap();
    assert!(err.message().contains("HttpRequestDenied"), "{err}");
    let err = get_err("http://127.0.0.1/", &["127.0.0.1:8080"])
        .await
        .unwrap();
    assert!(err.message().contains("HttpRequestDenied"), "{err}");
}

#[tokio::test]
async fn a_granted_name_is_dialed_as_checked_and_reached() {
    let (addr, server) = http_server("127.0.0.1").await;
    let port = addr.port();
    let head = get(
        format!("http://LOCALHOST:{port}/checked"),
        http_grant(&[&format!("localhost:{port}")]),
        server,
    )
    .await;
    assert!(head.starts_with("GET /checked HTTP/1.1\r\n"), "{head}");
}

const LOOPBACK_WARNING: &str =
    "opens every loopback service of this machine, flowhost's own API included; name the port";

#[test]
fn a_loopback_grant_without_a_port_is_warned_about_at_load() {
    // A flag.
    let (_, _, err) = run(flowhost().env("NO_COLOR", "1").args([
        "call",
        wasm("testing/echo").to_str().unwrap(),
        "--allow-http",
        "localhost",
        "--allow-http",
        "127.0.0.1:8080",
    ]));
    assert!(
        err.contains(&format!(
            "--allow-http: HTTP grant `localhost` {LOOPBACK_WARNING}, like `localhost:8080`"
        )),
        "{err}"
    );
    assert!(!err.contains("`127.0.0.1:8080` opens"), "{err}");

    // A flow file: the grant with its position; the flow still loads.
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("fetch.yaml");
    std::fs::write(
        &flow,
        "flow: fetch\nsteps:\n  - id: get\n    plugin: http-get\n    allow:\n      http:\n        - \"[::1]\"\n        - \"[::1]:8080\"\n",
    )
    .unwrap();
    let (code, out, err) = run(flowhost().env("NO_COLOR", "1").args([
        "check",
        flow.to_str().unwrap(),
        "--plugins",
        dist().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{}:7:11: HTTP grant `[::1]` {LOOPBACK_WARNING}",
            flow.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches(LOOPBACK_WARNING).count(), 1, "{err}");
}
