//! Capabilities are denied by default and granted exactly as given.

use std::io::{Read, Write};
use std::net::TcpListener;

use flowhost::{CallOptions, DirGrant, DirMode, ErrorKind, Grants};
use serde_json::{Value, json};

use crate::support::{call, flowhost, run, wasm};

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

/// A one-shot HTTP server on loopback; returns its address and a handle
/// that reports whether any connection arrived.
fn http_server() -> (String, std::thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < until {
            if let Ok((mut s, _)) = listener.accept() {
                s.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    });
    (addr, handle)
}

#[tokio::test]
async fn allowed_http_host_is_reachable() {
    let (addr, server) = http_server();
    let config = json!({"url": format!("http://{addr}/")}).to_string();
    let options = CallOptions {
        grants: Grants {
            http: vec![addr.clone()],
            ..Grants::default()
        },
        ..CallOptions::default()
    };
    let out = call("testing/http-get", "{}", &config, options)
        .await
        .result
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], 200);
    assert!(server.join().unwrap());
}

#[tokio::test]
async fn other_http_hosts_are_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = json!({"url": format!("http://{addr}/")}).to_string();
    let options = CallOptions {
        grants: Grants {
            http: vec!["api.example.com".into()],
            ..Grants::default()
        },
        ..CallOptions::default()
    };
    let err = call("testing/http-get", "{}", &config, options)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.message().to_lowercase().contains("denied"), "{err}");
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
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
