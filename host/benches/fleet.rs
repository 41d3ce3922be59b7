//! Scale-out: `flowhost serve` processes on the `memory` and `sqlite`
//! stores and one, two and three workers on one throwaway PostgreSQL, side
//! by side in one run, over real HTTP.
//!
//! Run with `cargo bench -p flowhost --bench fleet` (plugins are built
//! first; PostgreSQL's server programs must be installed, see the README's
//! setup command; `FLOWHOST_BENCH_QUICK=1` runs every phase 10 times
//! shorter). Prints, for a 3-step echo flow with a 1 KB input and 16
//! keep-alive clients spread over the servers: runs/s, p50 and p99, the CPU
//! the servers and PostgreSQL used per run, and the database transactions
//! and statements per run; then the takeover time (a worker's SIGKILL to the
//! first of its runs resumed elsewhere) and the submit-to-start latency of a
//! run that starts on another worker than the one that accepted it.

mod common;
// Shared with the store's unit tests; the bench uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "../src/store/tests/throwaway_pg.rs"]
mod throwaway_pg;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::http_load::{Conn, Limit, Stats, load};
use common::serve::{ServeOptions, Served, cpu_of, stat_fields};
use common::{input_1k, ms};
use throwaway_pg::ThrowawayPg;

const CLIENTS: usize = 16;
const PHASE: Duration = Duration::from_secs(10);
const WARMUP_RUNS: usize = 500;
/// Lease of the PostgreSQL workers: the takeover time follows it.
const LEASE: &str = "2s";
const TAKEOVERS: usize = 3;
/// Runs timed for the submit-to-start latency.
const HOPS: usize = 100;
const QUICK: u32 = 10;

/// Holds its run for a minute after writing the run's execution key to
/// `out/keys.txt`: a run resumed elsewhere writes its key again.
const HOLD: &str = "flow: hold\nsteps:\n  - id: k\n    plugin: key\n    timeout: 120s\n";
/// Holds a worker.
const BLOCK: &str = "flow: block\nsteps:\n  - id: nap\n    plugin: sleep\n    config: {ms: 60000}\n    timeout: 120s\n";
const STAMP: &str = "flow: stamp\nsteps:\n  - {id: one, plugin: echo}\n";

fn main() {
    let dist = common::build_plugins("build.sh");
    let dirs = tempfile::tempdir().unwrap();
    let dir = dirs.path();
    for sub in ["plugins", "flows", "out"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for name in ["echo", "sleep", "key"] {
        std::fs::copy(
            dist.join(format!("testing/{name}.wasm")),
            dir.join(format!("plugins/{name}.wasm")),
        )
        .unwrap();
    }
    let hold = HOLD.replace(
        "plugin: key\n",
        &format!(
            "plugin: key\n    config: {{file: /out/keys.txt, sleep_ms: 60000}}\n    \
             allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n",
            dir.join("out").display()
        ),
    );
    for (stem, yaml) in [
        ("chain", common::CHAIN),
        ("hold", &hold),
        ("block", BLOCK),
        ("stamp", STAMP),
    ] {
        std::fs::write(dir.join(format!("flows/{stem}.yaml")), yaml).unwrap();
    }
    let quick = std::env::var_os("FLOWHOST_BENCH_QUICK").is_some();
    let phase = if quick { PHASE / QUICK } else { PHASE };
    // Durable as in production (fsync on); statements counted.
    let pg = ThrowawayPg::start_with(&["-c", "shared_preload_libraries=pg_stat_statements"]);
    pg.psql("CREATE EXTENSION pg_stat_statements");
    let input = Bytes::from(input_1k().to_string());
    println!(
        "3-step echo flow, {} B input, {CLIENTS} keep-alive clients spread over the servers, \
         8 workers per server, {} CPUs, {phase:?} per phase; PostgreSQL with fsync on, lease {LEASE}",
        input.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let rt = common::runtime();
    rt.block_on(async {
        let mut rows = Vec::new();
        let bench = Bench {
            dir,
            pg: &pg,
            input: &input,
            phase,
        };
        rows.push(bench.throughput("memory, 1 server", 1, None).await);
        rows.push(bench.throughput("sqlite, 1 server", 1, None).await);
        for n in 1..=3 {
            let db = fresh_db(&pg);
            let name = format!("postgres, {n} worker{}", if n == 1 { "" } else { "s" });
            rows.push(bench.throughput(&name, n, Some(&db)).await);
        }
        println!();
        println!(
            "{:<22} {:>7} {:>8} {:>8} {:>8} {:>6} {:>11} {:>10} {:>9} {:>11}",
            "store", "runs", "runs/s", "p50 ms", "p99 ms", "errors", "server CPU", "PG CPU",
            "commits", "statements"
        );
        println!(
            "{:<22} {:>7} {:>8} {:>8} {:>8} {:>6} {:>11} {:>10} {:>9} {:>11}",
            "", "", "", "", "", "", "ms/run", "ms/run", "/run", "/run"
        );
        for row in &rows {
            row.print();
        }

        println!();
        let mut takeovers = Vec::new();
        for _ in 0..TAKEOVERS {
            takeovers.push(bench.takeover().await);
        }
        takeovers.sort();
        println!(
            "takeover (SIGKILL of a worker holding 4 runs -> the first resumed on another, lease {LEASE}): \
             min {:.0} ms, median {:.0} ms, max {:.0} ms over {TAKEOVERS}",
            ms(takeovers[0]),
            ms(takeovers[TAKEOVERS / 2]),
            ms(takeovers[TAKEOVERS - 1])
        );
        bench.hops(if quick { HOPS / 5 } else { HOPS }).await;
    });
}

/// What every phase shares.
struct Bench<'a> {
    dir: &'a Path,
    pg: &'a ThrowawayPg,
    input: &'a Bytes,
    phase: Duration,
}

/// One line of the table.
struct Row {
    name: String,
    stats: Stats,
    server_cpu: Duration,
    pg_cpu: Duration,
    /// Transactions and statements on the database, when on PostgreSQL.
    db: Option<(u64, u64)>,
}

impl Row {
    fn print(&self) {
        let runs = self.stats.latencies.len().max(1) as f64;
        let per = |d: Duration| ms(d) / runs;
        let (commits, statements) = match self.db {
            Some((c, s)) => (
                format!("{:.1}", c as f64 / runs),
                format!("{:.1}", s as f64 / runs),
            ),
            None => ("-".into(), "-".into()),
        };
        let pg_cpu = if self.db.is_some() {
            format!("{:.2}", per(self.pg_cpu))
        } else {
            "-".into()
        };
        println!(
            "{:<22} {:>7} {:>8.0} {:>8.2} {:>8.2} {:>6} {:>11.2} {:>10} {:>9} {:>11}",
            self.name,
            self.stats.latencies.len(),
            self.stats.latencies.len() as f64 / self.stats.elapsed.as_secs_f64(),
            ms(self.stats.p(0.5)),
            ms(self.stats.p(0.99)),
            self.stats.errors,
            per(self.server_cpu),
            pg_cpu,
            commits,
            statements
        );
    }
}

impl Bench<'_> {
    fn serve(&self, store: &str, workers: usize) -> Served {
        let lease = store.starts_with("postgres").then_some(LEASE);
        Served::start(&ServeOptions {
            dir: self.dir,
            store,
            workers,
            lease,
        })
    }

    /// `servers` servers on `db` (else on the store `name` starts with),
    /// loaded by 16 clients for a phase.
    async fn throughput(&self, name: &str, servers: usize, db: Option<&str>) -> Row {
        let store = match (db, name.split(',').next().unwrap()) {
            (Some(db), _) => self.pg.url_of(db),
            (None, "sqlite") => format!(
                "sqlite:{}",
                self.dir.join(format!("{servers}.db")).display()
            ),
            (None, _) => "memory".to_string(),
        };
        let served: Vec<Served> = (0..servers).map(|_| self.serve(&store, 8)).collect();
        let addrs: Vec<SocketAddr> = served.iter().map(|s| s.addr).collect();
        spread(&addrs, self.input, Limit::Runs(WARMUP_RUNS)).await;
        let cpu = || served.iter().map(Served::cpu).sum::<Duration>();
        let (server_before, pg_before) = (cpu(), pg_cpu(self.pg));
        let db_before = db.map(|db| db_counts(self.pg, db));
        let stats = spread(&addrs, self.input, Limit::Time(self.phase)).await;
        let (server_cpu, pg_cpu) = (cpu() - server_before, pg_cpu(self.pg) - pg_before);
        // Backends publish their transaction counts about once a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let db = db.zip(db_before).map(|(db, (c0, s0))| {
            let (c1, s1) = db_counts(self.pg, db);
            (c1.saturating_sub(c0), s1.saturating_sub(s0))
        });
        Row {
            name: name.to_string(),
            stats,
            server_cpu,
            pg_cpu,
            db,
        }
    }

    /// A worker holding 4 runs is killed with two others running: the time
    /// until the first of its runs writes its key again on another.
    async fn takeover(&self) -> Duration {
        let db = fresh_db(self.pg);
        let store = self.pg.url_of(&db);
        let keys = self.dir.join("out/keys.txt");
        let _ = std::fs::remove_file(&keys);
        let lines = || {
            std::fs::read_to_string(&keys)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let mut victim = self.serve(&store, 8);
        let mut conn = Conn::open(victim.addr).await.unwrap();
        for _ in 0..4 {
            let (status, body) = conn
                .post("/flows/hold/runs?wait=false", &Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        }
        wait_for("the 4 runs to start", || lines() >= 4).await;
        let _others = [self.serve(&store, 8), self.serve(&store, 8)];
        let killed = Instant::now();
        victim.kill();
        wait_for("a run to resume elsewhere", || lines() > 4).await;
        killed.elapsed()
    }

    /// Runs submitted to a worker whose one slot is held, so another starts
    /// them (woken by the database's notice), against runs submitted to the
    /// worker that starts them.
    async fn hops(&self, n: usize) {
        let db = fresh_db(self.pg);
        let store = self.pg.url_of(&db);
        let busy = self.serve(&store, 1);
        let mut to_busy = Conn::open(busy.addr).await.unwrap();
        let (status, body) = to_busy
            .post("/flows/block/runs?wait=false", &Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let blocker = run_id(&body);
        loop {
            let (_, body) = to_busy.get(&format!("/runs/{blocker}")).await.unwrap();
            if json(&body)["status"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let free = self.serve(&store, 8);
        let mut to_free = Conn::open(free.addr).await.unwrap();
        let mut elsewhere = Vec::new();
        let mut here = Vec::new();
        for _ in 0..n {
            elsewhere.push(submit_to_start(&mut to_busy).await);
            here.push(submit_to_start(&mut to_free).await);
        }
        let p50_p99 = |d: Vec<Duration>| (ms(common::median(d.clone())), ms(common::p99(d)));
        for (name, v) in [
            ("accepted by a busy worker, run by another", elsewhere),
            ("accepted by the worker that runs it", here),
        ] {
            let (s50, s99) = p50_p99(v.iter().map(|x| x.0).collect());
            let (a50, a99) = p50_p99(v.iter().map(|x| x.1).collect());
            println!(
                "{name:<42} submit-to-start p50 {s50:.1} ms p99 {s99:.1} ms; \
                 submit-to-answer p50 {a50:.1} ms p99 {a99:.1} ms ({n} runs, 1-step echo)"
            );
        }
    }
}

/// Submits a run (waiting for its answer); the time from the submit to the
/// run's `started_at` (millisecond precision) and to the answer.
async fn submit_to_start(conn: &mut Conn) -> (Duration, Duration) {
    let sent = SystemTime::now();
    let t = Instant::now();
    let (status, body) = conn
        .post("/flows/stamp/runs", &Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let answered = t.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, record) = conn.get(&format!("/runs/{}", run_id(&body))).await.unwrap();
    let started = json(&record)["started_at"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .expect("a record with started_at");
    (started.duration_since(sent).unwrap_or_default(), answered)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

fn run_id(body: &[u8]) -> String {
    json(body)["run_id"].as_str().unwrap().to_string()
}

/// 16 clients spread over `addrs` (client `i` on server `i % n`), their
/// stats merged.
async fn spread(addrs: &[SocketAddr], input: &Bytes, limit: Limit) -> Stats {
    let n = addrs.len();
    let loads = addrs.iter().enumerate().map(|(i, addr)| {
        let clients = CLIENTS / n + usize::from(i < CLIENTS % n);
        let limit = match limit {
            Limit::Runs(r) => Limit::Runs(r * clients / CLIENTS),
            time => time,
        };
        load(*addr, "/flows/chain/runs", input, clients, limit)
    });
    let mut merged = Stats {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for stats in futures::future::join_all(loads).await {
        merged.latencies.extend(stats.latencies);
        merged.errors += stats.errors;
        merged.elapsed = merged.elapsed.max(stats.elapsed);
    }
    merged.latencies.sort();
    merged
}

/// A new database on `pg`; its name.
fn fresh_db(pg: &ThrowawayPg) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "bench_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    pg.create_db(&name);
    name
}

/// Transactions committed on database `db`, and statements executed on it.
fn db_counts(pg: &ThrowawayPg, db: &str) -> (u64, u64) {
    let out = pg.psql(&format!(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'), \
         (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s \
          JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{db}')"
    ));
    let mut fields = out.split('|').map(|f| f.trim().parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// CPU time of the PostgreSQL server: the postmaster and its children.
fn pg_cpu(pg: &ThrowawayPg) -> Duration {
    let pid_file = std::fs::read_to_string(pg.dir().join("data/postmaster.pid")).unwrap();
    let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
    let mut total = cpu_of(postmaster);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat_fields(&stat).get(1) == Some(&postmaster.to_string().as_str()) {
            total += cpu_of(pid);
        }
    }
    total
}

/// Polls `done` every 2 ms for up to 60 s.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
