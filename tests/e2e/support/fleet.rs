//! A fleet: several `flowhost serve` processes on one fresh PostgreSQL
//! database, sharing a plugins folder, a flows folder, an output folder the
//! `append` plugin writes to, and a compile cache. Each server can be
//! stopped (SIGSTOP), continued (SIGCONT) and killed (SIGKILL).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use super::pg::Db;
use super::{Killed, Response, flowhost, http};

/// The lease of every fleet server: a dead worker's runs are claimed by
/// another this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(2);

/// The settings one server of a fleet is started with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Runs it executes at once.
    pub workers: usize,
    /// Runs waiting, fleet-wide.
    pub queue_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 64,
            queue_capacity: 1000,
        }
    }
}

/// The folders and the database of a fleet.
pub struct Fleet {
    dir: tempfile::TempDir,
    db: Db,
    started: usize,
}

impl Fleet {
    /// A fleet on a fresh database of the shared PostgreSQL, with `plugins`
    /// (e.g. `testing/append`) in its plugins folder under their file stems.
    /// No server runs yet.
    pub fn new(plugins: &[&str]) -> Fleet {
        Fleet::on(Db::fresh(), plugins)
    }

    /// The same on the database `db`.
    pub fn on(db: Db, plugins: &[&str]) -> Fleet {
        let dir = super::served_folder(plugins);
        Fleet {
            dir,
            db,
            started: 0,
        }
    }

    /// Writes `flows/{stem}.yaml`.
    pub fn flow(&self, stem: &str, yaml: &str) {
        std::fs::write(self.dir.path().join(format!("flows/{stem}.yaml")), yaml).unwrap();
    }

    /// The database every server of this fleet uses.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The output folder, granted read-write to `append` steps.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// A step (YAML, in a top-level `steps:` list) that appends to
    /// `out/log.txt`: `<run id> <id>`, unless `extra` sets an input `line`.
    pub fn append(&self, id: &str, extra: &str) -> String {
        format!(
            "  - id: {id}\n    plugin: append\n    config: {{file: /out/log.txt}}\n    \
             allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n{extra}",
            self.out().display()
        )
    }

    /// The lines of `out/log.txt`, in the order written.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.out().join("log.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many times each line was written to `out/log.txt`.
    pub fn calls(&self) -> BTreeMap<String, usize> {
        let mut calls = BTreeMap::new();
        for line in self.lines() {
            *calls.entry(line).or_default() += 1;
        }
        calls
    }

    /// Starts one more server with default [`Settings`].
    pub fn serve(&mut self) -> Server {
        self.serve_with(Settings::default())
    }

    /// Starts `n` servers with default [`Settings`].
    pub fn serve_n(&mut self, n: usize) -> Vec<Server> {
        (0..n).map(|_| self.serve()).collect()
    }

    /// Starts one more server on this fleet's database with `settings` and
    /// the fleet's [`LEASE`]; waits for its `listening` line.
    pub fn serve_with(&mut self, settings: Settings) -> Server {
        let n = self.started;
        self.started += 1;
        let d = self.dir.path();
        let config = d.join(format!("server-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "workers = {}\nqueue_capacity = {}\ndrain_timeout = \"1s\"\nlease = \"{}s\"\n",
                settings.workers,
                settings.queue_capacity,
                LEASE.as_secs()
            ),
        )
        .unwrap();
        let (child, addr, before, lines) = super::serve_lines(
            flowhost()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .arg("--plugins")
                .arg(d.join("plugins"))
                .arg("--flows")
                .arg(d.join("flows"))
                .arg("--config")
                .arg(&config)
                .args(["--store", self.db.url()])
                .arg("--cache-dir")
                .arg(cache_dir())
                .env("NO_COLOR", "1")
                .env("FLOWHOST_LOG", "warn")
                .stdout(Stdio::null()),
        );
        let log = Arc::new(Mutex::new(before));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines {
                sink.lock().unwrap().push(line);
            }
        });
        let name = format!("server {n} ({addr})");
        let id = worker_id(&log, &name);
        Server {
            child,
            addr,
            id,
            name,
            log,
        }
    }
}

/// The compile cache every fleet server shares.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-fleet-compile-cache")
}

/// The id in the `flowhost: worker ID` line a server prints at start.
fn worker_id(log: &Mutex<Vec<String>>, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = log.lock().unwrap().clone();
        let found = lines
            .iter()
            .find_map(|l| l.strip_prefix("flowhost: worker "));
        if let Some(id) = found {
            return id.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{name} printed no `flowhost: worker ID` line; its stderr:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `flowhost serve` of a fleet, killed when dropped.
pub struct Server {
    child: Killed,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its worker id, as run records name it (`"worker"`).
    pub id: String,
    /// `server N (ADDR)`, for messages.
    pub name: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn signal(&self, signal: Signal) {
        kill_process(Pid::from_child(&self.child), signal)
            .unwrap_or_else(|e| panic!("signal to {}: {e}", self.name));
    }

    /// SIGSTOP: frozen, holding whatever it holds.
    pub fn stop(&self) {
        self.signal(Signal::STOP);
    }

    /// SIGCONT: back from a stop.
    pub fn cont(&self) {
        self.signal(Signal::CONT);
    }

    /// SIGKILL, and reaped: no drain, nothing flushed, no lease released.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub async fn get(&self, path: &str) -> Response {
        http("GET", self.addr, path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Response {
        http("POST", self.addr, path, Some(body)).await
    }

    /// Starts a run of `flow` without waiting (`202`); its id.
    pub async fn submit(&self, flow: &str, input: &str) -> String {
        let r = self
            .post(&format!("/flows/{flow}/runs?wait=false"), input)
            .await;
        assert_eq!(
            r.status, 202,
            "{} refused a run of {flow}: {}",
            self.name, r.body
        );
        r.json()["run_id"].as_str().unwrap().to_string()
    }

    /// `GET /runs/{id}`, which must answer 200.
    pub async fn record(&self, id: &str) -> Value {
        let r = self.get(&format!("/runs/{id}")).await;
        assert_eq!(r.status, 200, "{} on run {id}: {}", self.name, r.body);
        r.json()
    }

    /// Polls run `id` until its status is `status`; panics with the last
    /// record after `within`.
    pub async fn wait_status(&self, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let record = self.record(id).await;
            if record["status"] == status {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} is not {status} after {within:?} (asked {}): {record}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls every run in `ids` until it finished; their records, in order.
    pub async fn wait_finished(&self, ids: &[String], within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut records = Vec::new();
        for id in ids {
            loop {
                let record = self.record(id).await;
                if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                    records.push(record);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "run {id} did not finish within {within:?} (asked {}): {record}",
                    self.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        records
    }
}

/// The worker a run record names (`"worker"`), or a panic showing it.
pub fn worker_of(record: &Value) -> &str {
    record["worker"]
        .as_str()
        .unwrap_or_else(|| panic!("the run record names no worker: {record}"))
}
