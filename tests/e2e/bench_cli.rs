//! `flowhost bench` as a user runs it: the text and JSON figures, failures
//! by kind, `for_each` items aggregated, usage errors, Ctrl-C, and its
//! throughput beside a server's on the same flow and input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{example, flowhost, http, plugins, run, wasm};

const SEQUENTIAL_INPUT: &str = r#"{"name": "ada", "n": 21}"#;

/// `flowhost bench ARGS --json`: its figures; panics unless it exits 0.
fn bench_json(args: &[&str]) -> Value {
    let (code, out, err) = run(flowhost().arg("bench").args(args).arg("--json"));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The step paths of a bench's JSON figures, in order.
fn paths(figures: &Value) -> Vec<&str> {
    figures["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect()
}

#[test]
fn bench_prints_throughput_latency_and_each_step() {
    let (code, out, err) = run(flowhost().args([
        "bench",
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        SEQUENTIAL_INPUT,
        "--runs",
        "30",
        "--concurrency",
        "3",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("flow `sequential`: 30 runs in "), "{out}");
    assert!(
        out.contains("at concurrency 3, after 3 warm-up runs"),
        "{out}"
    );
    for line in ["throughput   ", "latency      p50 ", "failures     none"] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    let header = out.lines().find(|l| l.starts_with("step ")).expect(&out);
    for column in ["count", "failed", "p50 ms", "p50 fuel", "p50 memory"] {
        assert!(header.contains(column), "{header}");
    }
    for step in ["greet", "passthrough", "combine"] {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(step))
            .unwrap_or_else(|| panic!("no row for {step}:\n{out}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        // step, count, failed, ms, fuel, memory (a number and a unit).
        assert_eq!(&cells[1..3], ["30", "0"], "{row}");
        assert!(cells[4].parse::<u64>().unwrap() > 0, "{row}");
        assert!(cells[6].ends_with("iB"), "{row}");
    }
    assert!(
        err.contains("bench of flow `sequential`: 3 warm-up runs"),
        "{err}"
    );
    // Not a terminal: no progress line.
    assert!(!err.contains("[bench]"), "{err}");
}

#[test]
fn bench_json_has_the_same_figures() {
    let f = bench_json(&[
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        SEQUENTIAL_INPUT,
        "--runs",
        "25",
        "--concurrency",
        "5",
    ]);
    assert_eq!(f["flow"], "sequential");
    assert_eq!(
        (f["runs"].as_u64(), f["succeeded"].as_u64()),
        (Some(25), Some(25))
    );
    assert_eq!(
        (f["failed"].as_u64(), f["warmup_runs"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(f["concurrency"], 5);
    assert_eq!(f["failures"], serde_json::json!([]));
    assert_eq!(f["interrupted"], false);
    let throughput = f["throughput_per_s"].as_f64().unwrap();
    let elapsed = f["elapsed_s"].as_f64().unwrap();
    assert!((throughput * elapsed - 25.0).abs() < 0.01, "{f}");
    let l = &f["latency_ms"];
    let ms: Vec<f64> = ["p50", "p90", "p99", "max"]
        .iter()
        .map(|p| l[p].as_f64().unwrap())
        .collect();
    assert!(ms[0] > 0.0 && ms.windows(2).all(|w| w[0] <= w[1]), "{l}");
    assert_eq!(paths(&f), ["greet", "passthrough", "combine"]);
    for step in f["steps"].as_array().unwrap() {
        assert_eq!(step["kind"], "plugin", "{step}");
        assert_eq!(step["plugin"], "echo", "{step}");
        assert_eq!(
            (step["count"].as_u64(), step["failed"].as_u64()),
            (Some(25), Some(0))
        );
        assert!(step["duration_ms_p50"].as_f64().unwrap() > 0.0, "{step}");
        assert!(step["fuel_p50"].as_u64().unwrap() > 0, "{step}");
        // At least one WebAssembly page.
        assert!(step["peak_memory_p50"].as_u64().unwrap() >= 65536, "{step}");
    }
}

#[test]
fn bench_aggregates_for_each_items_under_one_path() {
    let f = bench_json(&[
        &example("for_each.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        r#"{"numbers": [1, 2, 3]}"#,
        "--runs",
        "4",
        "--concurrency",
        "4",
    ]);
    assert_eq!(paths(&f), ["squares", "squares[].work", "squares[].square"]);
    let steps = f["steps"].as_array().unwrap();
    // The composite step has a duration but calls nothing itself.
    assert_eq!(
        (steps[0]["kind"].as_str(), steps[0]["count"].as_u64()),
        (Some("for_each"), Some(4))
    );
    assert!(steps[0].get("fuel_p50").is_none(), "{}", steps[0]);
    for item_step in &steps[1..] {
        assert_eq!(item_step["count"], 12, "three items a run: {item_step}");
    }
    // Each `work` sleeps 50 ms.
    let work = steps[1]["duration_ms_p50"].as_f64().unwrap();
    assert!((50.0..5000.0).contains(&work), "{}", steps[1]);
}

/// A flow whose second step always fails `transient`.
fn failing_flow() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("failing.yaml");
    std::fs::write(
        &flow,
        "flow: failing\nsteps:\n  - {id: ok, plugin: echo}\n  - id: boom\n    plugin: fail\n    config: {kind: transient, message: pricing is down}\n",
    )
    .unwrap();
    (dir, flow)
}

#[test]
fn bench_counts_failures_by_kind() {
    let (_dir, flow) = failing_flow();
    let flow = flow.to_string_lossy().into_owned();
    let args = [flow.as_str(), "--plugins", &plugins(), "--runs", "12"];
    let f = bench_json(&args);
    assert_eq!(
        (f["runs"].as_u64(), f["failed"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(
        f["failures"],
        serde_json::json!([{
            "kind": "transient",
            "runs": 12,
            "example": "step boom failed: transient: pricing is down",
        }])
    );
    let steps = f["steps"].as_array().unwrap();
    assert_eq!(
        (steps[0]["path"].as_str(), steps[0]["failed"].as_u64()),
        (Some("ok"), Some(0))
    );
    assert_eq!(
        (steps[1]["path"].as_str(), steps[1]["failed"].as_u64()),
        (Some("boom"), Some(12))
    );

    // A bench of failing runs still succeeds: the failures are its figures.
    let (code, out, err) = run(flowhost().arg("bench").args(args));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("failures     12 of 12 runs"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("transient")
            && l.contains(" 12 ")
            && l.ends_with("e.g. step boom failed: transient: pricing is down")),
        "{out}"
    );
}

#[test]
fn bad_bench_flags_are_usage_errors() {
    let seq = example("sequential.yaml");
    let plugins = plugins();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--runs", "0"],
            "invalid value `0` for --runs: at least one run",
        ),
        (
            &["--runs", "1000001"],
            "invalid value `1000001` for --runs: at most 1000000 runs",
        ),
        (
            &["--runs", "many"],
            "invalid value `many` for --runs: expected a whole number",
        ),
        (
            &["--concurrency", "0"],
            "invalid value `0` for --concurrency: at least one run at once",
        ),
        (
            &["--concurrency", "1025"],
            "invalid value `1025` for --concurrency: at most 1024 runs at once",
        ),
        (
            &["--runs", "5", "--duration", "1s"],
            "--runs cannot be used with --duration",
        ),
        (
            &["--duration", "0s"],
            "invalid value `0s` for --duration: a bench must last longer than zero",
        ),
        (
            &["--duration", "25h"],
            "invalid value `25h` for --duration: at most 24h",
        ),
        (&["--input", "{nope"], "--input is not valid JSON"),
    ];
    for (flags, want) in cases {
        let (code, out, err) = run(flowhost()
            .args(["bench", &seq, "--plugins", &plugins])
            .args(*flags));
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(
            err.starts_with(&format!("flowhost: {want}")),
            "{flags:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(out.is_empty(), "{flags:?}: {out}");
    }
    let (code, _, err) = run(flowhost().args(["bench", "no-such.yaml", "--plugins", &plugins]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such.yaml"), "{err}");
}

#[test]
fn bench_for_a_duration_and_stopped_by_ctrl_c_prints_what_it_measured() {
    let f = bench_json(&[
        &example("sequential.yaml"),
        "--plugins",
        &plugins(),
        "--input",
        SEQUENTIAL_INPUT,
        "--duration",
        "500ms",
        "--concurrency",
        "2",
    ]);
    let elapsed = f["elapsed_s"].as_f64().unwrap();
    assert!(f["runs"].as_u64().unwrap() > 0, "{f}");
    assert!((0.4..30.0).contains(&elapsed), "{f}");

    // Each run takes over 100 ms: a minute's bench is in flight at Ctrl-C.
    let mut child = flowhost()
        .args(["bench", &example("for_each.yaml"), "--plugins", &plugins()])
        .args([
            "--input",
            r#"{"numbers": [1, 2, 3]}"#,
            "--duration",
            "60s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let interrupted = Instant::now();
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("flowhost bench did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let f: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(f["interrupted"], true, "{f}");
    assert!(f["elapsed_s"].as_f64().unwrap() < 30.0, "{f}");
    // Runs cut short are not counted as failures.
    assert_eq!(f["failed"], 0, "{f}");
    assert_eq!(paths(&f), ["squares", "squares[].work", "squares[].square"]);
}

/// A plugins folder holding only `echo` and a flows folder holding
/// `sequential`, for a server.
fn server_folders() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dirs = tempfile::tempdir().unwrap();
    let (plugins, flows) = (dirs.path().join("plugins"), dirs.path().join("flows"));
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::copy(wasm("testing/echo"), plugins.join("echo.wasm")).unwrap();
    std::fs::copy(example("sequential.yaml"), flows.join("sequential.yaml")).unwrap();
    (dirs, plugins, flows)
}

/// Runs per second of `runs` runs of `flow` through the server at `addr`,
/// `clients` requests at once, each waiting for its run.
async fn server_throughput(addr: std::net::SocketAddr, runs: usize, clients: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(async move {
                for _ in (c..runs).step_by(clients) {
                    let r = http(
                        "POST",
                        addr,
                        "/flows/sequential/runs",
                        Some(SEQUENTIAL_INPUT),
                    )
                    .await;
                    assert_eq!(r.status, 200, "{}", r.body);
                    assert_eq!(r.json()["status"], "succeeded", "{}", r.body);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    runs as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_throughput_agrees_with_a_servers_on_the_same_flow() {
    use flowhost::server::{Server, ServerConfig};
    const RUNS: usize = 200;
    const CLIENTS: usize = 4;
    let (_dirs, plugins_dir, flows_dir) = server_folders();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-server-compile-cache");
    let host = flowhost::Host::new(flowhost::Config::default().cache(Some(cache))).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::start(host, &plugins_dir, &flows_dir, config)
        .await
        .expect("server starts");
    // Warm-up, as the bench does.
    server_throughput(server.addr(), CLIENTS, CLIENTS).await;
    let served = server_throughput(server.addr(), RUNS, CLIENTS).await;
    server.shutdown().await;

    let flow = flows_dir.join("sequential.yaml");
    let f = tokio::task::spawn_blocking(move || {
        let flow = flow.to_string_lossy().into_owned();
        let plugins = plugins_dir.to_string_lossy().into_owned();
        let runs = RUNS.to_string();
        let clients = CLIENTS.to_string();
        bench_json(&[
            &flow,
            "--plugins",
            &plugins,
            "--input",
            SEQUENTIAL_INPUT,
            "--runs",
            &runs,
            "--concurrency",
            &clients,
        ])
    })
    .await
    .unwrap();
    let benched = f["throughput_per_s"].as_f64().unwrap();
    println!(
        "{RUNS} runs at {CLIENTS} at once: flowhost bench {benched:.1} runs/s, server {served:.1} runs/s"
    );
    assert_eq!(f["succeeded"].as_u64(), Some(RUNS as u64), "{f}");
    // In process, without HTTP, a store or a queue, the bench is not slower
    // than the server path; a factor of two absorbs a busy machine.
    assert!(
        benched * 2.0 >= served,
        "flowhost bench {benched:.1} runs/s, server {served:.1} runs/s"
    );
}
