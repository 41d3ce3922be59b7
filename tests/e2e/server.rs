//! `flowhost serve`: a real server on a loopback port, driven over real HTTP.
//! Each test starts its own server (the library's `Server`, or the binary)
//! on a temporary flows folder and a plugins folder holding only the
//! components it needs, compiled once into a shared cache.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use flowhost::server::{Server, ServerConfig, ShutdownReport};
use flowhost::{Config, Host};
use serde_json::{Value, json};

use crate::support::{Response, flowhost, http, poll_until, wasm};

/// A server started on a temporary flows and plugins folder.
struct Served {
    server: Option<Server>,
    host: Host,
    addr: SocketAddr,
    _dirs: tempfile::TempDir,
}

/// The compile cache of every server these tests start.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-server-compile-cache")
}

/// Settings for a test: an ephemeral loopback port and a short drain.
fn config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        drain_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// Copies `plugins` (e.g. `testing/echo`) into a plugins folder under their
/// file stems and writes `flows` (file stem, YAML) into a flows folder.
fn folders(plugins: &[&str], flows: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dirs = tempfile::tempdir().unwrap();
    let plugins_dir = dirs.path().join("plugins");
    let flows_dir = dirs.path().join("flows");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    std::fs::create_dir_all(&flows_dir).unwrap();
    for name in plugins {
        let stem = Path::new(name).file_name().unwrap().to_string_lossy();
        std::fs::copy(wasm(name), plugins_dir.join(format!("{stem}.wasm"))).unwrap();
    }
    for (stem, yaml) in flows {
        std::fs::write(flows_dir.join(format!("{stem}.yaml")), yaml).unwrap();
    }
    (dirs, plugins_dir, flows_dir)
}

impl Served {
    async fn start(plugins: &[&str], flows: &[(&str, &str)], config: ServerConfig) -> Served {
        let host = Host::new(Config::default().cache(Some(cache_dir()))).expect("host");
        Served::start_on(host, plugins, flows, config).await
    }

    async fn start_on(
        host: Host,
        plugins: &[&str],
        flows: &[(&str, &str)],
        config: ServerConfig,
    ) -> Served {
        let (dirs, plugins_dir, flows_dir) = folders(plugins, flows);
        let server = Server::start(host.clone(), &plugins_dir, &flows_dir, config)
            .await
            .expect("server starts");
        Served {
            addr: server.addr(),
            server: Some(server),
            host,
            _dirs: dirs,
        }
    }

    async fn get(&self, path: &str) -> Response {
        http("GET", self.addr, path, None).await
    }

    async fn post(&self, path: &str, body: &str) -> Response {
        http("POST", self.addr, path, Some(body)).await
    }

    /// Starts a run without waiting (`202`); returns its id.
    async fn start_run(&self, flow: &str, input: &str) -> String {
        let r = self
            .post(&format!("/flows/{flow}/runs?wait=false"), input)
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()["run_id"].as_str().unwrap().to_string()
    }

    /// `GET /runs/{id}`, which must answer 200.
    async fn run(&self, id: &str) -> Value {
        let r = self.get(&format!("/runs/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Polls a run until its status is `status`.
    async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.run(id).await;
            if last["status"] == status {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} is not {status} after {timeout:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls a run until it finished (succeeded, failed or cancelled).
    async fn wait_finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let record = self.run(id).await;
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never finished: {record}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `/metrics` until `done` holds of it; returns that text.
    async fn metrics_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            if done(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{m}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the host until `n` guest instances are alive.
    async fn instances_become(&self, n: usize, timeout: Duration) {
        let host = self.host.clone();
        poll_until(timeout, &format!("{n} guest instances alive"), move || {
            let alive = host.instances_alive();
            async move { alive == n }
        })
        .await;
    }

    /// The `/metrics` text.
    async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn shutdown(mut self) -> ShutdownReport {
        self.server.take().unwrap().shutdown().await
    }
}

/// The value of the sample `series` (name and labels, exactly as printed);
/// 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn started(flow: &str) -> String {
    format!("flowhost_runs_started_total{{flow=\"{flow}\"}}")
}

/// The runs-finished series; `kind` and `class` are empty for a success.
fn finished(flow: &str, status: &str, kind: &str, class: &str) -> String {
    format!(
        "flowhost_runs_finished_total{{flow=\"{flow}\",status=\"{status}\",kind=\"{kind}\",class=\"{class}\"}}"
    )
}

fn error_body(kind: &str, message: &str, step: Option<&str>) -> Value {
    json!({"error": {"kind": kind, "message": message, "step": step}})
}

const GREET: &str = "\
flow: greet
input_schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
steps:
  - id: hello
    plugin: echo
";

const BROKEN: &str = "\
flow: broken
steps:
  - id: boom
    plugin: fail
    config: {kind: permanent, message: no way}
";

fn sleep_flow(name: &str, ms: u64, extra: &str) -> String {
    format!(
        "flow: {name}\n{extra}steps:\n  - id: nap\n    plugin: sleep\n    config: {{ms: {ms}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_its_status_and_body() {
    let s = Served::start(
        &["testing/echo", "testing/fail"],
        &[("greet", GREET), ("broken", BROKEN)],
        config(),
    )
    .await;

    // A run, waited for.
    let r = s.post("/flows/greet/runs", r#"{"name": "Ada"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let id = body["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        body,
        json!({"run_id": id, "status": "succeeded", "output": {"name": "Ada"}})
    );
    assert_eq!(r.header("x-flowhost-run-id"), Some(id.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Its record.
    let r = s.get(&format!("/runs/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-flowhost-run-id"), Some(id.as_str()));
    let record = r.json();
    assert_eq!(record["run_id"], id.as_str());
    assert_eq!(record["flow"], "greet");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"], json!({"name": "Ada"}));
    assert_eq!(record["steps"][0]["path"], "hello");
    assert_eq!(record["steps"][0]["status"], "succeeded");
    assert!(
        record["started_at"].as_str().unwrap().ends_with('Z'),
        "{record}"
    );

    // Cancelling a finished run is a conflict.
    let r = s.post(&format!("/runs/{id}/cancel"), "").await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        error_body(
            "conflict",
            &format!("run `{id}` already finished (succeeded)"),
            None
        )
    );

    // A run not waited for: 202, then poll its record.
    let r = s
        .post("/flows/greet/runs?wait=false", r#"{"name": "Bo"}"#)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let body = r.json();
    let id2 = body["run_id"].as_str().unwrap().to_string();
    assert_eq!(body, json!({"run_id": id2, "status": "queued"}));
    assert_eq!(r.header("x-flowhost-run-id"), Some(id2.as_str()));
    let record = s.wait_finished(&id2).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"], json!({"name": "Bo"}));

    // A run that fails is still a 200: the run happened, and its error is in the body.
    let r = s.post("/flows/broken/runs", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["step"], "boom");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no way"),
        "{body}"
    );
    assert!(body.get("output").is_none(), "{body}");

    // Errors.
    let r = s.post("/flows/nope/runs", "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no flow named `nope`", None)
    );
    assert_eq!(r.header("x-flowhost-run-id"), None);
    // The flow is looked up before the body is read.
    let r = s.post("/flows/nope/runs", "{not json").await;
    assert_eq!(r.status, 404);

    let r = s.post("/flows/greet/runs", "{not json").await;
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "bad-json");
    assert_eq!(e["error"]["step"], Value::Null);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is not valid JSON: "),
        "{e}"
    );

    let r = s.post("/flows/greet/runs", r#"{"name": 5}"#).await;
    assert_eq!(r.status, 422);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "invalid-input");
    assert_eq!(e["error"]["step"], "input");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the input does not match the flow's input_schema: input/name: "),
        "{msg}"
    );
    let r = s.post("/flows/greet/runs", "{}").await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"name\"")
    );

    let r = s.get("/runs/no-such-run").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body(
            "not-found",
            "no run `no-such-run` (runs are kept in memory, and only the most recent)",
            None
        )
    );
    let r = s.post("/runs/no-such-run/cancel", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no run `no-such-run`", None)
    );

    // Listings.
    let r = s.get("/flows").await;
    assert_eq!(r.status, 200);
    let flows = r.json()["flows"].as_array().unwrap().clone();
    let names: Vec<&str> = flows.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "greet"]);
    let greet = &flows[1];
    assert_eq!(greet["flow"], "greet");
    assert_eq!(greet["steps"], 1);
    assert_eq!(greet["triggers"], json!([]));
    assert_eq!(greet["concurrency"], Value::Null);
    assert_eq!(greet["error"], Value::Null);
    assert!(greet["file"].as_str().unwrap().ends_with("greet.yaml"));

    let r = s.get("/plugins").await;
    assert_eq!(r.status, 200);
    let plugins = r.json()["plugins"].as_array().unwrap().clone();
    let mut names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "fail"]);
    assert!(plugins.iter().all(|p| p["error"].is_null()), "{plugins:?}");

    // An event no flow subscribes to is accepted and starts nothing.
    let r = s.post("/events/nobody.listens", r#"{"a": 1}"#).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), json!({"topic": "nobody.listens", "runs": []}));
    let r = s.post("/events/nobody.listens", "{oops").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["kind"], "bad-json");

    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(sample(&r.body, &started("greet")), 2.0, "{}", r.body);
    assert_eq!(
        sample(&r.body, &finished("broken", "failed", "permanent", "guest")),
        1.0
    );
    assert!(r.body.trim_end().ends_with("# EOF"));

    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["checks"]["runtime"]["status"], "ok");

    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ready = r.json();
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(ready["checks"]["probe"]["status"], "ok");
    assert_eq!(
        ready["checks"]["plugins"],
        json!({"status": "ok", "loaded": 2, "errors": 0})
    );
    assert_eq!(
        ready["checks"]["flows"],
        json!({"status": "ok", "loaded": 2, "errors": 0})
    );
    assert_eq!(
        ready["checks"]["queue"],
        json!({"status": "ok", "queued": 0, "capacity": 64})
    );

    let report = s.shutdown().await;
    assert_eq!(report.drained, 0);
    assert!(report.cancelled_running.is_empty() && report.cancelled_queued.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_answers_in_the_api_error_shape() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], config()).await;

    // A body one byte over the 2 MiB limit: axum's own refusal, in JSON.
    let big = "x".repeat((2 << 20) + 1);
    for path in ["/flows/greet/runs", "/events/order.created"] {
        let r = s.post(path, &big).await;
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        assert_eq!(
            r.json(),
            error_body(
                "too-large",
                "the request body is over the 2.0 MiB limit",
                None
            ),
            "{path}"
        );
    }
    // A query the route does not take.
    let r = s.post("/flows/greet/runs?wait=maybe", "{}").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let e = r.json();
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("wait"),
        "{e}"
    );
    // No such route, or not with this method.
    let r = s.get("/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        error_body("not-found", "no endpoint GET /nowhere", None)
    );
    let r = s.get("/flows/greet/runs").await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.json(),
        error_body(
            "method-not-allowed",
            "/flows/greet/runs does not take GET",
            None
        )
    );
    // Invalid JSON names the request body, with serde's line and column.
    let r = s
        .post("/flows/greet/runs", "{\n  \"name\": \"Ada\",\n}")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        error_body(
            "bad-json",
            "the request body is not valid JSON: key must be a string at line 3 column 1",
            None
        )
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_recovers() {
    let s = Served::start(
        &["testing/sleep"],
        &[(
            "slow",
            &sleep_flow("slow", 500, "triggers: [{event: slow.go}]\n"),
        )],
        ServerConfig {
            workers: 1,
            queue_capacity: 2,
            retry_after_secs: 3,
            ..config()
        },
    )
    .await;
    let first = s.start_run("slow", "{}").await;
    s.wait_status(&first, "running", Duration::from_secs(5))
        .await;
    let second = s.start_run("slow", "{}").await;
    let third = s.start_run("slow", "{}").await;
    assert_eq!(s.run(&second).await["status"], "queued");
    assert_eq!(s.run(&third).await["status"], "queued");

    let full = error_body(
        "queue-full",
        "the run queue is full (2 runs waiting); try again later",
        None,
    );
    let r = s.post("/flows/slow/runs?wait=false", "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json(), full);
    // Waiting callers are refused alike, and so are events.
    let r = s.post("/flows/slow/runs", "{}").await;
    assert_eq!(r.status, 429);
    let r = s.post("/events/slow.go", "{}").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json(), full);
    let r = s.get("/readyz").await;
    assert_eq!(r.json()["checks"]["queue"]["status"], "degraded");
    assert_eq!(sample(&s.metrics().await, "flowhost_queue_depth"), 2.0);

    // Cancelling a queued run frees its place at once.
    let r = s.post(&format!("/runs/{third}/cancel"), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"run_id": third, "status": "queued", "cancelling": true})
    );
    let record = s
        .wait_status(&third, "cancelled", Duration::from_secs(2))
        .await;
    assert_eq!(record["error"]["kind"], "cancelled");
    assert_eq!(
        record["error"]["message"],
        "the run was cancelled before it started"
    );
    assert_eq!(record["steps"], json!([]));
    let fourth = s.start_run("slow", "{}").await;
    assert_eq!(
        s.post("/flows/slow/runs?wait=false", "{}").await.status,
        429
    );

    for id in [&first, &second, &fourth] {
        assert_eq!(s.wait_finished(id).await["status"], "succeeded");
    }
    let r = s.post("/flows/slow/runs", "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "succeeded");
    let m = s.metrics().await;
    // The cancelled run never started.
    assert_eq!(sample(&m, &started("slow")), 4.0);
    assert_eq!(sample(&m, "flowhost_queue_depth"), 0.0);
    s.shutdown().await;
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// The most intervals `(start, end)` that hold at one instant.
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    // At a tie, an end comes before a start: touching is not overlapping.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_flow_concurrency_limit_caps_overlap() {
    let s = Served::start(
        &["testing/sleep"],
        &[(
            "capped",
            &sleep_flow("capped", 300, "concurrency: {limit: 2}\n"),
        )],
        ServerConfig {
            workers: 8,
            ..config()
        },
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(s.start_run("capped", "{}").await);
    }
    let mut intervals = Vec::new();
    for id in &ids {
        let record = s.wait_finished(id).await;
        assert_eq!(record["status"], "succeeded", "{record}");
        let start = epoch_ms(record["started_at"].as_str().unwrap());
        let duration = record["duration_ms"].as_f64().unwrap();
        assert!(duration >= 300.0, "{record}");
        // `started_at` has millisecond precision and comes from the wall
        // clock: trim each end by 5 ms so back-to-back runs do not count.
        intervals.push((start + 5.0, start + duration - 5.0));
    }
    assert_eq!(max_overlap(&intervals), 2, "{intervals:?}");
    let flows = s.get("/flows").await.json();
    assert_eq!(flows["flows"][0]["concurrency"], 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_every_subscribed_flow() {
    let subscribed = |name: &str| {
        format!(
            "flow: {name}\ntriggers: [{{event: \"order.*\"}}]\nsteps:\n  - id: take\n    plugin: echo\n"
        )
    };
    let s = Served::start(
        &["testing/echo"],
        &[
            ("ship", &subscribed("ship")),
            ("bill", &subscribed("bill")),
            (
                "audit",
                "flow: audit\ntriggers: [{event: \"invoice.*\"}]\nsteps:\n  - id: a\n    plugin: echo\n",
            ),
            (
                "strict",
                "flow: strict\ntriggers: [{event: \"order.*\"}]\ninput_schema: {required: [sku]}\nsteps:\n  - id: a\n    plugin: echo\n",
            ),
        ],
        config(),
    )
    .await;
    let r = s.post("/events/order.created", r#"{"order": 7}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let body = r.json();
    assert_eq!(body["topic"], "order.created");
    let ids: Vec<String> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{body}");
    let mut flows = Vec::new();
    for id in &ids {
        let record = s.wait_finished(id).await;
        let flow = record["flow"].as_str().unwrap().to_string();
        if flow == "strict" {
            // The payload fails this flow's schema: its run fails at once.
            assert_eq!(record["status"], "failed", "{record}");
            assert_eq!(record["error"]["kind"], "invalid-input", "{record}");
            assert_eq!(record["error"]["step"], "input", "{record}");
            assert_eq!(record["steps"], json!([]), "{record}");
        } else {
            assert_eq!(record["status"], "succeeded", "{record}");
            assert_eq!(record["output"], json!({"order": 7}));
        }
        flows.push(flow);
    }
    flows.sort();
    assert_eq!(flows, ["bill", "ship", "strict"]);
    let m = s.metrics().await;
    assert_eq!(sample(&m, &started("audit")), 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_emitted_event_starts_the_subscribed_flow() {
    let s = Served::start(
        &["testing/echo", "testing/emit"],
        &[
            (
                "a",
                "flow: a\nsteps:\n  - id: tell\n    plugin: emit\n    config: {topic: b.go}\n",
            ),
            (
                "b",
                "flow: b\ntriggers: [{event: b.go}]\nsteps:\n  - id: hear\n    plugin: echo\n",
            ),
        ],
        config(),
    )
    .await;
    let r = s.post("/flows/a/runs", r#"{"from": "a"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["output"], json!({"emitted": true}));
    let m = s
        .metrics_until("flow b to finish", |m| {
            sample(m, &finished("b", "succeeded", "", "")) >= 1.0
        })
        .await;
    assert_eq!(sample(&m, &started("b")), 1.0);
    assert_eq!(sample(&m, &finished("b", "succeeded", "", "")), 1.0);
    let flows = s.get("/flows").await.json();
    assert_eq!(flows["flows"][1]["triggers"], json!(["b.go"]));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_guard_stops_an_event_cycle() {
    let s = Served::start(
        &["testing/emit"],
        &[(
            "again",
            "flow: again\ntriggers: [{event: again.go}]\nsteps:\n  - id: echo_back\n    plugin: emit\n    config: {topic: again.go}\n",
        )],
        ServerConfig {
            max_event_hops: 3,
            ..config()
        },
    )
    .await;
    let r = s.post("/events/again.go", r#"{"n": 1}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json()["runs"][0].as_str().unwrap().to_string();
    // Hops 0, 1 and 2 emit; hop 3's emit is refused, so its step fails.
    let done = |m: &str| {
        sample(m, &finished("again", "succeeded", "", ""))
            + sample(m, &finished("again", "failed", "permanent", "guest"))
    };
    s.metrics_until("four runs of `again`", |m| done(m) >= 4.0)
        .await;
    // Give a runaway chain the time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = s.metrics().await;
    assert_eq!(sample(&m, &started("again")), 4.0, "{m}");
    assert_eq!(
        sample(&m, &finished("again", "succeeded", "", "")),
        3.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, &finished("again", "failed", "permanent", "guest")),
        1.0,
        "{m}"
    );
    assert_eq!(s.run(&first).await["status"], "succeeded");
    s.shutdown().await;
}

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
    let r = http("GET", addr, &format!("/runs/{waiting}"), None).await;
    assert_eq!(r.json()["status"], "cancelled", "{}", r.body);

    let report = shutdown.await.unwrap();
    let took = stopped.elapsed();
    assert_eq!(report.drained, 1, "{report:?}");
    assert_eq!(report.cancelled_running, [long]);
    assert_eq!(report.cancelled_queued, [waiting]);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_runs_exactly() {
    let s = Served::start(
        &["testing/echo", "testing/fail"],
        &[(
            "x",
            "flow: x\nsteps:\n  - id: check\n    plugin: fail\n    if: \"${input.fail}\"\n    config: {kind: permanent, message: told to}\n  - id: done\n    plugin: echo\n",
        )],
        config(),
    )
    .await;
    // Every label order, exactly as printed.
    let r = s.post("/flows/x/runs", r#"{"fail": false}"#).await;
    assert_eq!(r.json()["status"], "succeeded");
    let before = s.metrics().await;
    assert!(
        before.contains("flowhost_runs_started_total{flow=\"x\"} 1\n"),
        "{before}"
    );
    assert!(
        before.contains(
            "flowhost_runs_finished_total{flow=\"x\",status=\"succeeded\",kind=\"\",class=\"\"} 1\n"
        ),
        "{before}"
    );
    for _ in 0..3 {
        let r = s.post("/flows/x/runs", r#"{"fail": false}"#).await;
        assert_eq!(r.json()["status"], "succeeded", "{}", r.body);
    }
    let r = s.post("/flows/x/runs", r#"{"fail": true}"#).await;
    assert_eq!(r.json()["status"], "failed", "{}", r.body);
    let after = s.metrics().await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(&started("x")), 4.0);
    assert_eq!(delta(&finished("x", "succeeded", "", "")), 3.0);
    assert_eq!(delta(&finished("x", "failed", "permanent", "guest")), 1.0);
    assert_eq!(
        delta(
            "flowhost_step_failures_total{flow=\"x\",step=\"check\",kind=\"permanent\",class=\"guest\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("flowhost_run_duration_seconds_count{flow=\"x\"}"),
        4.0
    );
    assert_eq!(sample(&after, "flowhost_runs_in_flight"), 0.0);
    s.shutdown().await;
}

/// A flow whose one step spins until cancelled.
const SPIN: &str = "\
flow: spin
steps:
  - id: forever
    plugin: busy-loop
    timeout: 60s
    limits: {fuel: 1000000000000000}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unhealthy_while_its_probe_cannot_run() {
    // One guest instance at most: while a run holds it, the probe cannot
    // instantiate its step. (A tiny `probe_timeout` does not do it: the
    // probe's echo finishes well within even 1 ms.)
    let host =
        Host::new(Config::default().cache(Some(cache_dir())).max_instances(1)).expect("host");
    let s = Served::start_on(host, &["hostile/busy-loop"], &[("spin", SPIN)], config()).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");

    let id = s.start_run("spin", "{}").await;
    s.instances_become(1, Duration::from_secs(5)).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "unhealthy", "{body}");
    let probe = &body["checks"]["probe"];
    assert_eq!(probe["status"], "unhealthy", "{body}");
    assert!(
        probe["error"]
            .as_str()
            .unwrap()
            .starts_with("step probe failed: "),
        "{body}"
    );
    assert_eq!(body["checks"]["plugins"]["status"], "ok", "{body}");
    // Alive all the same.
    assert_eq!(s.get("/healthz").await.status, 200);

    assert_eq!(s.post(&format!("/runs/{id}/cancel"), "").await.status, 202);
    s.wait_status(&id, "cancelled", Duration::from_secs(2))
        .await;
    s.instances_become(0, Duration::from_secs(2)).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["checks"]["probe"]["status"], "ok");
    s.shutdown().await;
}

/// Reads the binary's stderr on a thread, line by line.
fn lines_of(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_binary_serves_and_stops_on_sigterm() {
    let (_dirs, plugins_dir, flows_dir) = folders(&["testing/echo"], &[("greet", GREET)]);
    let mut child = flowhost()
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(&plugins_dir)
        .arg("--flows")
        .arg(&flows_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flowhost serve");
    let lines = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let addr: SocketAddr = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("flowhost: listening on http://") {
                    break a.trim().parse().unwrap();
                }
                seen.push(line);
            }
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "no `listening` line ({e}); stderr so far:\n{}",
                    seen.join("\n")
                );
            }
        }
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let r = http("GET", addr, "/healthz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http("POST", addr, "/flows/greet/runs", Some(r#"{"name": "Cy"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["output"], json!({"name": "Cy"}));
    let r = http("GET", addr, "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
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
async fn an_event_for_more_flows_than_the_queue_holds_is_accepted_on_an_empty_queue() {
    let subscribed = |name: &str| {
        format!(
            "flow: {name}\ntriggers: [{{event: fan.out}}]\nsteps:\n  - id: take\n    plugin: echo\n"
        )
    };
    let s = Served::start(
        &["testing/echo"],
        &[
            ("one", &subscribed("one")),
            ("two", &subscribed("two")),
            ("three", &subscribed("three")),
        ],
        ServerConfig {
            workers: 1,
            queue_capacity: 2,
            ..config()
        },
    )
    .await;
    // Three runs, a queue of two: accepted whole, as the queue is empty.
    let r = s.post("/events/fan.out", r#"{"n": 1}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let runs = r.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for id in &runs {
        let record = s.wait_finished(id.as_str().unwrap()).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
    s.shutdown().await;
}

/// `flowhost serve` on `flows_dir`, without colours; its address and its
/// stderr lines.
fn serve_binary(
    plugins_dir: &Path,
    flows_dir: &Path,
) -> (
    std::process::Child,
    SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = flowhost()
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(plugins_dir)
        .arg("--flows")
        .arg(flows_dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flowhost serve");
    let lines = lines_of(child.stderr.take().unwrap());
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("flowhost: listening on http://") {
                    return (child, a.trim().parse().unwrap(), lines);
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `listening` line: {e}");
            }
        }
    }
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

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
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
