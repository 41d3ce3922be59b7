//! Outbound HTTP from steps over the host's keep-alive pool: connections are
//! reused across requests and calls, one step's requests run concurrently,
//! a denied host fails only its own request, and a call's deadline closes
//! what it had in flight. (The allow-list itself is tested in `grants.rs`.)
//! The same from JavaScript and Python steps, through the WIT `http`
//! interface their helpers wrap (`http.fetchAll`, `fs.http.send_all`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowhost::{CallOptions, CallReport, Config, Context, ErrorKind, Grants, Host, Limits};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::{call, wasm};

/// A keep-alive HTTP/1.1 server on loopback that answers `ok` to every
/// request after `delay`, and counts the connections it accepted. Two paths
/// answer otherwise: `/big` with a body one byte over 4 MiB, `/echo` with
/// the request's method, `x-tag` header and body.
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
            let service = hyper::service::service_fn(move |req| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(hyper::Response::new(Full::new(answer(req).await)))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, accepted)
}

/// What [`counting_server`] answers to `req`.
async fn answer(req: hyper::Request<hyper::body::Incoming>) -> Bytes {
    match req.uri().path() {
        "/big" => Bytes::from(vec![b'x'; (4 << 20) + 1]),
        "/echo" => {
            let method = req.method().to_string();
            let tag = req.headers().get("x-tag").cloned();
            let tag = tag.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
            let tag = tag.to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            Bytes::from(format!("{method} {tag} {body}"))
        }
        _ => Bytes::from_static(b"ok"),
    }
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
    println!("ten 100 ms requests from one Rust step took {took:?}");
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

// --- JavaScript and Python steps ---------------------------------------------

/// The steps that send the requests their input lists with their
/// language's helper (`{"requests": [...]}` -> `{"answers": [...], "elapsed_ms": N}`).
const LANG_STEPS: [&str; 2] = ["js/js-http", "python/py-http"];

/// Calls `step` (built by build-all.sh, compiled once per test run) with
/// `requests` (plus `extra` fields in its input).
async fn send_from(step: &str, requests: Value, extra: Value, options: &CallOptions) -> CallReport {
    crate::support::dist_all();
    let plugin = crate::support::plugin_once(step).await;
    let mut input = json!({ "requests": requests });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let ctx = Context::direct(plugin.name());
    crate::support::host()
        .call_with(&plugin, &ctx, &input.to_string(), options)
        .await
}

/// The output of a call that succeeded.
fn output(step: &str, report: CallReport) -> Value {
    let out = report
        .result
        .unwrap_or_else(|e| panic!("{step} failed: {e}"));
    serde_json::from_str(&out).unwrap()
}

/// The `(kind, message)` of answer `i`, which must be an error.
fn error_of(step: &str, out: &Value, i: usize) -> (String, String) {
    let e = &out["answers"][i]["error"];
    let kind = e["kind"].as_str();
    let kind = kind.unwrap_or_else(|| panic!("{step}: answer {i} is no error: {out}"));
    (kind.to_string(), e["message"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_and_python_steps_send_ten_requests_at_once_over_pooled_connections() {
    for step in LANG_STEPS {
        let (addr, accepted) = counting_server(Duration::from_millis(100)).await;
        let urls: Vec<String> = (0..10).map(|i| format!("http://{addr}/slow/{i}")).collect();
        for round in 1..=2 {
            let out = output(
                step,
                send_from(step, json!(urls), json!({}), &grant(&[addr])).await,
            );
            all_ok(&out.to_string(), 10);
            let took = out["elapsed_ms"].as_u64().unwrap();
            println!("{step}: ten 100 ms requests took {took} ms");
            assert!(took < 800, "{step}: ten 100 ms requests took {took} ms");
            let dialed = accepted.load(Ordering::SeqCst);
            assert!(
                (1..=12).contains(&dialed),
                "{step}: round {round} of ten concurrent requests: {dialed} connections"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_host_or_a_bad_request_fails_only_its_own_place() {
    let (addr, _) = counting_server(Duration::ZERO).await;
    let (other, other_accepted) = counting_server(Duration::ZERO).await;
    let requests = json!([
        format!("http://{addr}/a"),
        format!("http://{other}/not-granted"),
        format!("http://user@{addr}/userinfo"),
        "ftp://example.com/file",
        {"url": format!("http://{addr}/x"), "method": "GE T"},
        {"url": format!("http://{addr}/x"), "headers": {"connection": "close"}},
        {"url": format!("http://{addr}/echo"), "method": "post", "headers": [["x-tag", "t1"]], "body": "hello"},
        {"url": format!("http://{addr}/echo"), "method": "PUT", "json": {"n": 1}},
    ]);
    for step in LANG_STEPS {
        let out = output(
            step,
            send_from(step, requests.clone(), json!({}), &grant(&[addr])).await,
        );
        assert_eq!(out["answers"][0]["body"], "ok", "{step}: {out}");
        let (kind, message) = error_of(step, &out, 1);
        assert_eq!(kind, "denied", "{step}: {out}");
        assert!(
            message.contains("not in the step's `http` grant"),
            "{step}: {message}"
        );
        assert!(
            message.contains("/not-granted"),
            "{step}: the message names the URL: {message}"
        );
        assert_eq!(error_of(step, &out, 2).0, "denied", "{step}: {out}");
        for i in 3..=5 {
            assert_eq!(
                error_of(step, &out, i).0,
                "invalid",
                "{step} answer {i}: {out}"
            );
        }
        assert_eq!(out["answers"][6]["body"], "POST t1 hello", "{step}: {out}");
        let put = out["answers"][7]["body"].as_str().unwrap_or_default();
        let sent = put
            .strip_prefix("PUT - ")
            .map(serde_json::from_str::<Value>);
        assert_eq!(
            sent.and_then(Result::ok),
            Some(json!({"n": 1})),
            "{step}: {out}"
        );
    }
    assert_eq!(other_accepted.load(Ordering::SeqCst), 0, "nothing dialed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_or_a_response_past_its_cap_are_typed_errors() {
    let (addr, _) = counting_server(Duration::ZERO).await;
    let many: Vec<String> = (0..65).map(|i| format!("http://{addr}/{i}")).collect();
    let mixed = json!([format!("http://{addr}/big"), format!("http://{addr}/small")]);
    for step in LANG_STEPS {
        let out = output(
            step,
            send_from(step, json!(many), json!({}), &grant(&[addr])).await,
        );
        assert_eq!(out["answers"].as_array().unwrap().len(), 65, "{step}");
        let (kind, message) = error_of(step, &out, 64);
        assert_eq!(kind, "invalid", "{step}: {message}");
        assert!(
            message.contains("at most 64 requests, not 65"),
            "{step}: {message}"
        );

        let out = output(
            step,
            send_from(step, mixed.clone(), json!({}), &grant(&[addr])).await,
        );
        let (kind, message) = error_of(step, &out, 0);
        assert_eq!(kind, "too-large", "{step}: {message}");
        assert!(message.contains("4194304 bytes"), "{step}: {message}");
        assert_eq!(out["answers"][1]["body"], "ok", "{step}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_timeout_and_the_others_answer() {
    let (fast, _) = counting_server(Duration::ZERO).await;
    for step in LANG_STEPS {
        let (silent, _server) = silent_server().await;
        let requests = json!([
            {"url": format!("http://{silent}/hangs"), "timeoutMs": 200},
            format!("http://{fast}/a"),
        ]);
        let started = Instant::now();
        let out = output(
            step,
            send_from(step, requests, json!({}), &grant(&[silent, fast])).await,
        );
        let (kind, message) = error_of(step, &out, 0);
        assert_eq!(kind, "timeout", "{step}: {message}");
        assert!(message.contains("within 200 ms"), "{step}: {message}");
        assert_eq!(out["answers"][1]["body"], "ok", "{step}: {out}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{step}: took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncaught_http_error_fails_the_step_with_its_kind() {
    let (addr, _) = counting_server(Duration::ZERO).await;
    let one = json!({"one": true});
    for step in LANG_STEPS {
        let (silent, _server) = silent_server().await;
        let denied = json!([format!("http://{addr}/")]);
        let err = send_from(step, denied, one.clone(), &CallOptions::default())
            .await
            .result
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Permanent, "{step}: {err}");
        assert!(err.message().starts_with("http denied: "), "{step}: {err}");

        let slow = json!([{"url": format!("http://{silent}/"), "timeoutMs": 100}]);
        let err = send_from(step, slow, one.clone(), &grant(&[silent]))
            .await
            .result
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient, "{step}: {err}");
        assert!(err.message().starts_with("http timeout: "), "{step}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_deadline_ends_a_send_all_in_flight() {
    for step in LANG_STEPS {
        let (addr, server) = silent_server().await;
        let options = CallOptions {
            limits: Some(Limits {
                timeout: Duration::from_millis(1500),
                ..Limits::default()
            }),
            ..grant(&[addr])
        };
        let err = send_from(
            step,
            json!([format!("http://{addr}/hangs")]),
            json!({}),
            &options,
        )
        .await
        .result
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deadline, "{step}: {err}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap_or_else(|_| panic!("{step}: the connection stayed open after the deadline"))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_step_sends_ten_requests_at_once_and_sees_a_denial_in_its_place() {
    let (addr, accepted) = counting_server(Duration::from_millis(100)).await;
    let mut urls: Vec<String> = (0..10).map(|i| format!("http://{addr}/slow/{i}")).collect();
    urls.push("http://127.0.0.1:9/not-granted".into());
    crate::support::dist_all();
    crate::support::plugin_once("c/c-http").await;
    let started = Instant::now();
    let report = send_from("c/c-http", json!(urls), json!({}), &grant(&[addr])).await;
    let took = started.elapsed();
    let out = output("c/c-http", report);
    let answers = out["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 11, "{out}");
    all_ok(&json!({"answers": answers[..10]}).to_string(), 10);
    assert_eq!(error_of("c/c-http", &out, 10).0, "denied", "{out}");
    assert!(
        took < Duration::from_millis(800),
        "ten 100 ms requests took {took:?}"
    );
    assert!(accepted.load(Ordering::SeqCst) <= 10);
}
