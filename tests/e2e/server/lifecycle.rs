//! A run's and a server's life: cancel, drain and shutdown, the `serve`
//! binary and SIGTERM, and what no input may do to either (overflow, forge logs).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_busy_loop_step() {
    let s = Served::start(&["hostile/busy-loop"], &[("spin", SPIN)], config()).await;
    let id = s.start_run("spin", "{}").await;
    s.wait_status(&id, "running", Duration::from_secs(5)).await;
    s.instances_become(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.run(&id).await["status"], "running");

    let asked = Instant::now();
    let r = s.post(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"run_id": id, "status": "running", "cancelling": true})
    );
    assert_eq!(r.header("x-flowhost-run-id"), Some(id.as_str()));
    let record = s
        .wait_status(&id, "cancelled", Duration::from_secs(2))
        .await;
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(record["error"]["kind"], "cancelled", "{record}");
    s.instances_become(0, Duration::from_secs(2)).await;
    let r = s.post(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        error_body(
            "conflict",
            &format!("run `{id}` already finished (cancelled)"),
            None
        )
    );
    let m = s.metrics().await;
    assert_eq!(
        sample(&m, &finished("spin", "cancelled", "cancelled", "flow")),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "flowhost_instances_alive"), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_slow_run_and_cancels_the_rest() {
    let s = Served::start(
        &["testing/sleep"],
        &[
            ("quick", &sleep_flow("quick", 300, "")),
            ("long", &sleep_flow("long", 10_000, "")),
        ],
        ServerConfig {
            workers: 2,
            drain_timeout: Duration::from_secs(1),
            ..config()
        },
    )
    .await;
    let long = s.start_run("long", "{}").await;
    s.wait_status(&long, "running", Duration::from_secs(5))
        .await;
    let quick = s.start_run("quick", "{}").await;
    s.wait_status(&quick, "running", Duration::from_secs(5))
        .await;
    let waiting = s.start_run("quick", "{}").await;
    assert_eq!(s.run(&waiting).await["status"], "queued");

    let addr = s.addr;
    let stopped = Instant::now();
    let shutdown = tokio::spawn(s.shutdown());
    // While draining, it still answers, but takes no new runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = http("POST", addr, "/flows/quick/runs", Some("{}")).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        error_body("shutting-down", "the server is shutting down", None)
    );
    // A durable store keeps the queued run to resume; memory cancels it.
    let r = http("GET", addr, &format!("/runs/{waiting}"), None).await;
    let queued_ends = if durable() { "queued" } else { "cancelled" };
    assert_eq!(r.json()["status"], queued_ends, "{}", r.body);

    let report = shutdown.await.unwrap();
    let took = stopped.elapsed();
    assert_eq!(report.drained, 1, "{report:?}");
    if durable() {
        assert_eq!(report.left_to_resume, [waiting, long], "{report:?}");
        assert!(report.cancelled_running.is_empty() && report.cancelled_queued.is_empty());
    } else {
        assert_eq!(report.cancelled_running, [long]);
        assert_eq!(report.cancelled_queued, [waiting]);
    }
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_binary_serves_and_stops_on_sigterm() {
    let (_dirs, plugins_dir, flows_dir) = folders(&["testing/echo"], &[("greet", GREET)]);
    // The default store: a file in the data directory (its own, from `flowhost()`).
    let (mut child, addr, lines) = crate::support::serve(
        flowhost()
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(&plugins_dir)
            .arg("--flows")
            .arg(&flows_dir)
            .stdout(std::process::Stdio::null()),
    );
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let r = http("GET", addr, "/healthz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http("POST", addr, "/flows/greet/runs", Some(r#"{"name": "Cy"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["output"], json!({"name": "Cy"}));
    let r = http("GET", addr, "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    crate::support::sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("flowhost serve did not stop within 15 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rest: Vec<String> = lines.iter().collect();
    assert!(status.success(), "{status:?}; stderr:\n{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.starts_with(
            "flowhost: stopped: 0 run(s) drained, 0 cancelled mid-run [], 0 queued run(s) never started []"
        )),
        "stderr after SIGTERM:\n{}",
        rest.join("\n")
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_timeout_past_a_year_does_not_load_and_no_limit_overflows() {
    let forever =
        "flow: forever\ntimeout: 18446744073709551615s\nsteps:\n  - id: a\n    plugin: echo\n";
    // Limits set in code are not checked like a file's: they must not
    // overflow a deadline either.
    let limits = flowhost::Limits {
        timeout: Duration::MAX,
        ..flowhost::Limits::default()
    };
    let s = Served::start(
        &["testing/echo"],
        &[("greet", GREET), ("forever", forever)],
        ServerConfig { limits, ..config() },
    )
    .await;
    let flows = s.get("/flows").await.json();
    let entry = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "forever")
        .unwrap_or_else(|| panic!("{flows}"))
        .clone();
    let error = entry["error"].to_string();
    assert!(
        error.contains("forever.yaml:2:10: invalid duration `18446744073709551615s` for `timeout`: it is longer than the maximum of 1year"),
        "{entry}"
    );
    let r = s.post("/flows/forever/runs?wait=false", "{}").await;
    assert_eq!(r.status, 404, "{}", r.body);

    let r = s.post("/flows/greet/runs", r#"{"name": "Ada"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "succeeded");
    assert_eq!(sample(&s.metrics().await, "flowhost_runs_in_flight"), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_from_clients_and_steps_never_reach_the_log_raw() {
    const FORGED: &str = "2026-01-01T00:00:00Z INFO forged";
    let noisy = format!(
        "flow: noisy\nsteps:\n  - id: say\n    plugin: fail\n    config: {{message: \"\\x1b[2J\\n{FORGED} by a step\"}}\n    continue_on_error: true\n  - id: tell\n    plugin: emit\n    config: {{topic: \"\\x1b[2J\\n{FORGED} by an emit\"}}\n    continue_on_error: true\n"
    );
    let (_dirs, plugins_dir, flows_dir) =
        folders(&["testing/fail", "testing/emit"], &[("noisy", &noisy)]);
    let (mut child, addr, lines) = serve_binary(&plugins_dir, &flows_dir);

    // A client's topic with a terminal escape and a line break.
    let r = http(
        "POST",
        addr,
        "/events/%1B%5B2J%0A2026-01-01T00:00:00Z%20INFO%20forged",
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json(),
        error_body(
            "bad-request",
            &format!("the event topic `\\u{{1b}}[2J\\u{{a}}{FORGED}` has control characters"),
            None
        )
    );
    // A step's error and a step's emitted topic.
    let r = http("POST", addr, "/flows/noisy/runs", Some("{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let record = r.json();
    assert_eq!(record["status"], "succeeded", "{record}");

    crate::support::sigterm(&child);
    assert!(child.wait().unwrap().success());
    let log: Vec<String> = lines.iter().collect();
    let log = log.join("\n");
    assert!(!log.contains('\u{1b}'), "a raw escape in the log:\n{log}");
    assert!(
        !log.lines().any(|l| l.starts_with(FORGED)),
        "a forged log line:\n{log}"
    );
    for escaped in [
        format!("\\u{{1b}}[2J\\u{{a}}{FORGED} by a step"),
        format!("emit refused: the event topic `\\u{{1b}}[2J\\u{{a}}{FORGED} by an emit`"),
    ] {
        assert!(log.contains(&escaped), "no `{escaped}` in the log:\n{log}");
    }
}

/// Times one GET and checks it answered 200 within `bound`.
async fn quick_get(addr: SocketAddr, path: &str, bound: Duration) -> Response {
    let t = Instant::now();
    let r = http("GET", addr, path, None).await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert!(took < bound, "{path} took {took:?}");
    r
}

/// The error a listing (`/plugins` or `/flows`) shows for `name`.
fn listed_error(r: &Response, list: &str, name: &str) -> Option<String> {
    r.json()[list]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["error"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_in_watched_folders_neither_stall_reloads_nor_shutdown() {
    let (_dirs, plugins_dir, flows_dir) = folders(&["testing/echo"], &[("greet", GREET)]);
    let (mut child, addr, lines) = serve_binary(&plugins_dir, &flows_dir);
    // A FIFO blocks whoever opens it for reading until a writer comes.
    for fifo in [plugins_dir.join("pipe.wasm"), flows_dir.join("pipe.yaml")] {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
    }
    let bound = Duration::from_millis(100);
    poll_until(Duration::from_secs(30), "both FIFOs refused", || async {
        quick_get(addr, "/healthz", bound).await;
        let plugins = quick_get(addr, "/plugins", bound).await;
        let flows = quick_get(addr, "/flows", bound).await;
        [(plugins, "plugins"), (flows, "flows")]
            .iter()
            .all(|(r, list)| {
                listed_error(r, list, "pipe").is_some_and(|e| e.contains("not a regular file"))
            })
    })
    .await;
    quick_get(addr, "/readyz", bound).await;
    // Reloads go on: a plugin dropped in after the FIFOs loads and runs.
    std::fs::copy(wasm("testing/echo"), plugins_dir.join("echo2.wasm")).unwrap();
    poll_until(Duration::from_secs(30), "echo2 loaded", || async {
        let plugins = quick_get(addr, "/plugins", bound).await;
        plugins.json()["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "echo2" && p["error"].is_null())
    })
    .await;
    let r = http("POST", addr, "/flows/greet/runs", Some(r#"{"name": "Di"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // And SIGTERM stops the server within its drain timeout (10 s).
    let t = Instant::now();
    crate::support::sigterm(&child);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > Duration::from_secs(12) {
            let _ = child.kill();
            let log: Vec<String> = lines.try_iter().collect();
            panic!("still running 12 s after SIGTERM:\n{}", log.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}
