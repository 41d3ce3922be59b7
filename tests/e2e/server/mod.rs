//! `flowhost serve`: a real server on a loopback port, driven over real HTTP.
//! Each test starts its own server (the library's `Server`, or the binary)
//! on a temporary flows folder and a plugins folder holding only the
//! components it needs, compiled once into a shared cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use flowhost::server::{Server, ServerConfig, ShutdownReport};
use flowhost::{Config, Host};
use serde_json::{Value, json};

use crate::support::{Response, flowhost, http, poll_until, wasm};

mod api;
mod auth;
mod connections;
mod events;
mod lifecycle;
mod limits;
mod openapi;
mod store;

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

/// Whether these tests run on a durable store (`FLOWHOST_TEST_STORE=sqlite`
/// or `postgres`).
fn durable() -> bool {
    matches!(
        std::env::var("FLOWHOST_TEST_STORE").as_deref(),
        Ok("sqlite" | "postgres")
    )
}

/// The store `$FLOWHOST_TEST_STORE` names for a server whose files are in
/// `dir`: `sqlite`, a fresh file; `postgres`, a fresh database on the
/// PostgreSQL whose `postgres` database `$FLOWHOST_TEST_PG` names; else none
/// (memory).
fn store_under_test(dir: &Path) -> Option<flowhost::store::StoreUrl> {
    match std::env::var("FLOWHOST_TEST_STORE").as_deref() {
        Ok("sqlite") => Some(flowhost::store::StoreUrl::Sqlite(dir.join("runs.db"))),
        Ok("postgres") => {
            let base = std::env::var("FLOWHOST_TEST_PG")
                .expect("FLOWHOST_TEST_STORE=postgres needs FLOWHOST_TEST_PG");
            let url = crate::support::pg::fresh_db_at(&base);
            Some(
                url.parse()
                    .unwrap_or_else(|e| panic!("--store {url} is refused: {e}")),
            )
        }
        _ => None,
    }
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

    /// A server on these plugins and flows. Its store is `config.store`, else
    /// the one `$FLOWHOST_TEST_STORE` names (`sqlite`: a fresh file;
    /// `postgres`: a fresh database; the README's test command runs these
    /// tests with each), else memory.
    async fn start_on(
        host: Host,
        plugins: &[&str],
        flows: &[(&str, &str)],
        mut config: ServerConfig,
    ) -> Served {
        let (dirs, plugins_dir, flows_dir) = folders(plugins, flows);
        if config.store.is_none() {
            config.store = store_under_test(dirs.path());
        }
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

/// Milliseconds since the epoch of an RFC 3339 time.
pub(crate) fn epoch_ms(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// The most intervals `(start, end)` that hold at one instant.
pub(crate) fn max_overlap(intervals: &[(f64, f64)]) -> usize {
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

/// A flow whose one step spins until cancelled.
const SPIN: &str = "\
flow: spin
steps:
  - id: forever
    plugin: busy-loop
    timeout: 60s
    limits: {fuel: 1000000000000000}
";

/// `flowhost serve` on `flows_dir`, without colours; its address and its
/// stderr lines.
fn serve_binary(
    plugins_dir: &Path,
    flows_dir: &Path,
) -> (
    crate::support::Killed,
    SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    crate::support::serve(
        flowhost()
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(plugins_dir)
            .arg("--flows")
            .arg(flows_dir)
            .arg("--data-dir")
            .arg(flows_dir.with_file_name("data"))
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null()),
    )
}

/// Every server test again, on a SQLite store: the test binary runs itself
/// with `FLOWHOST_TEST_STORE=sqlite` on the `server::` tests, so that
/// `cargo test` checks both stores.
#[test]
fn the_server_tests_pass_on_a_sqlite_store_too() {
    if std::env::var_os("FLOWHOST_TEST_STORE").is_some() {
        return;
    }
    server_tests_pass_on("SQLite", &[("FLOWHOST_TEST_STORE", "sqlite")]);
}

/// And on PostgreSQL: one throwaway server for the whole child run, a fresh
/// database for each server a test starts; stopped when this test ends.
#[test]
fn the_server_tests_pass_on_a_postgres_store_too() {
    if std::env::var_os("FLOWHOST_TEST_STORE").is_some() {
        return;
    }
    let pg = crate::support::pg::ThrowawayPg::start();
    server_tests_pass_on(
        "PostgreSQL",
        &[
            ("FLOWHOST_TEST_STORE", "postgres"),
            ("FLOWHOST_TEST_PG", &pg.url()),
        ],
    );
}

/// Runs this test binary's `server::` tests with `env`; fails with their
/// failures.
fn server_tests_pass_on(store: &str, env: &[(&str, &str)]) {
    let me = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(me)
        .args(["server::", "--skip", "the_server_tests_pass_on_a_"])
        .envs(env.iter().copied())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| l.contains("FAILED") || l.starts_with("test result"))
        .collect::<Vec<_>>()
        .join("\n");
    // What each failed test printed, from the child's `failures:` section.
    let failures = stdout.find("\nfailures:\n").map_or("", |i| &stdout[i..]);
    let failures: String = failures.chars().take(20_000).collect();
    assert!(
        out.status.success(),
        "server tests on a {store} store:\n{summary}\n{failures}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" passed;") && !stdout.contains(" 0 passed;"),
        "{summary}"
    );
}
