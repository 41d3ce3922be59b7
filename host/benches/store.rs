//! What keeping runs durable costs: `flowhost serve` on the `memory` store
//! and on a `sqlite` store, side by side in one run, over real HTTP.
//!
//! Run with `cargo bench -p flowhost --bench store` (plugins are built
//! first; `FLOWHOST_BENCH_QUICK=1` runs every phase 20 times shorter).
//! Prints, for a 3-step echo flow with a 1 KB input and 16 keep-alive
//! clients: runs/s and p50/p99 per store, the SQLite/memory ratios, rows
//! and bytes written per run; the same flow with a 1 MB input (every step
//! outputs 1 MB) and the store's growth per run; and the time a server
//! takes to resume 10,000 unfinished runs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::http_load::{Limit, Stats, load};
use common::input_1k;
use flowhost::Host;
use flowhost::RunRecord;
use flowhost::server::{Server, ServerConfig};
use flowhost::store::memory::{Bounds, MemoryStore};
use flowhost::store::sqlite::SqliteStore;
use flowhost::store::{NewRun, StepEntry, Store};

const CLIENTS: usize = 16;
const PHASE: Duration = Duration::from_secs(10);
const BIG_RUNS: usize = 200;
const UNFINISHED: usize = 10_000;
const QUICK: u32 = 20;

fn main() {
    let dist = common::build_plugins("build.sh");
    let dirs = tempfile::tempdir().unwrap();
    let plugins = dirs.path().join("plugins");
    let flows = dirs.path().join("flows");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::copy(dist.join("testing/echo.wasm"), plugins.join("echo.wasm")).unwrap();
    std::fs::write(flows.join("chain.yaml"), common::CHAIN).unwrap();
    let quick = std::env::var_os("FLOWHOST_BENCH_QUICK").is_some();
    let scale = if quick { QUICK } else { 1 };
    let phase = PHASE / scale;
    let unfinished = UNFINISHED / scale as usize;
    let big_runs = BIG_RUNS / scale as usize;

    let rt = common::runtime();
    rt.block_on(async {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            queue_capacity: 1000,
            ..ServerConfig::default()
        };
        let host = Host::new(config.host_config()).unwrap();
        let input = Bytes::from(input_1k().to_string());
        let start = |store: Arc<dyn Store>| {
            let (host, config) = (host.clone(), config.clone());
            let (plugins, flows) = (plugins.clone(), flows.clone());
            async move {
                Server::start_with_store(host, &plugins, &flows, config, store)
                    .await
                    .expect("server starts")
            }
        };
        println!(
            "3-step echo flow, {} B input, {CLIENTS} keep-alive clients, {} workers, {} CPUs, {:?} per phase",
            input.len(),
            config.workers,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            phase
        );

        // The store alone: the writes of a 3-step run, from 16 tasks.
        let alone_db = dirs.path().join("alone.db");
        let alone = Arc::new(SqliteStore::open(&alone_db).await.unwrap());
        let n = 20_000 / scale as usize;
        let t = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let store = alone.clone();
                tokio::spawn(async move {
                    let raw = serde_json::value::RawValue::from_string(input_1k().to_string()).unwrap();
                    for i in (c..n).step_by(CLIENTS) {
                        write_one_run(&*store, &format!("alone-{i}"), &raw).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let took = t.elapsed();
        let c = alone.write_counters();
        println!(
            "the SQLite store alone (the 6 writes of a 3-step run, 16 tasks): {:.0} runs/s, {:.2} transactions per run",
            n as f64 / took.as_secs_f64(),
            c.transactions as f64 / n as f64
        );
        drop(alone);

        // Memory first, then SQLite, each on a fresh server.
        let memory = start(Arc::new(MemoryStore::new(Bounds::default()))).await;
        let mem = timed(&memory, &input, phase).await;
        memory.shutdown().await;

        let db = dirs.path().join("bench.db");
        let sqlite = Arc::new(SqliteStore::open(&db).await.unwrap());
        let server = start(sqlite.clone()).await;
        let before = sqlite.write_counters();
        let lite = timed(&server, &input, phase).await;
        let after = sqlite.write_counters();

        println!();
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>9} {:>7}",
            "store", "runs", "runs/s", "p50 ms", "p99 ms", "errors"
        );
        mem.row("memory");
        lite.row("sqlite");
        let throughput = rate(&lite) / rate(&mem);
        let p50 = (lite.p(0.5).as_secs_f64() - mem.p(0.5).as_secs_f64()) * 1e3;
        println!(
            "sqlite / memory throughput: {:.0}% (target >= 70%: {})",
            throughput * 100.0,
            met(throughput >= 0.7)
        );
        println!(
            "sqlite p50 - memory p50: {p50:+.2} ms (target <= +1 ms: {})",
            met(p50 <= 1.0)
        );
        let runs = lite.latencies.len().max(1) as f64;
        println!(
            "written per run: {:.2} rows, {:.0} bytes, {:.2} transactions (group commit: {:.1} rows per transaction)",
            (after.operations - before.operations) as f64 / runs,
            (after.bytes - before.bytes) as f64 / runs,
            (after.transactions - before.transactions) as f64 / runs,
            (after.operations - before.operations) as f64
                / (after.transactions - before.transactions).max(1) as f64
        );

        // 1 MB documents: the input and every step's output.
        let big = Bytes::from(format!("{{\"blob\": \"{}\"}}", "x".repeat(1 << 20)));
        let size_before = file_bytes(&db);
        let t = Instant::now();
        let stats = load(server.addr(), "/flows/chain/runs", &big, 4, Limit::Runs(big_runs)).await;
        let elapsed = t.elapsed();
        let growth = file_bytes(&db).saturating_sub(size_before) as f64 / big_runs as f64;
        println!();
        println!(
            "1 MB input (each step outputs 1 MB), 4 clients: {} runs in {:.1} s, {:.1} runs/s, p50 {:.1} ms, {} errors; store growth {:.2} MB per run",
            stats.latencies.len(),
            elapsed.as_secs_f64(),
            stats.latencies.len() as f64 / elapsed.as_secs_f64(),
            stats.p(0.5).as_secs_f64() * 1e3,
            stats.errors,
            growth / (1 << 20) as f64
        );
        server.shutdown().await;
        drop(sqlite);

        // Resume: a store holding `unfinished` accepted runs.
        let resume_db = dirs.path().join("resume.db");
        let store = SqliteStore::open(&resume_db).await.unwrap();
        let input_raw = serde_json::value::RawValue::from_string(input_1k().to_string()).unwrap();
        let mut batch = Vec::new();
        for i in 0..unfinished {
            batch.push(new_run(&format!("resume-{i:06}"), &input_raw));
            if batch.len() == 500 {
                store.accept(std::mem::take(&mut batch)).await.unwrap();
            }
        }
        store.accept(batch).await.unwrap();
        drop(store);
        let t = Instant::now();
        let store = Arc::new(SqliteStore::open(&resume_db).await.unwrap());
        let server = start(store.clone()).await;
        let started = t.elapsed();
        let first = wait_for_one(&server).await;
        let to_first = t.elapsed();
        println!();
        println!(
            "resume {unfinished} unfinished runs: server up in {:.0} ms, first resumed run finished after {:.0} ms (run {first})",
            started.as_secs_f64() * 1e3,
            to_first.as_secs_f64() * 1e3
        );
        server.shutdown().await;
    });
}

/// Warm-up, then a timed phase of the chain flow.
async fn timed(server: &Server, input: &Bytes, phase: Duration) -> Stats {
    load(
        server.addr(),
        "/flows/chain/runs",
        input,
        CLIENTS,
        Limit::Runs(500),
    )
    .await;
    load(
        server.addr(),
        "/flows/chain/runs",
        input,
        CLIENTS,
        Limit::Time(phase),
    )
    .await
}

fn rate(s: &Stats) -> f64 {
    s.latencies.len() as f64 / s.elapsed.as_secs_f64()
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The store's bytes on disk: the file and its write-ahead log.
fn file_bytes(db: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    len(db) + len(&db.with_extension("db-wal"))
}

fn new_run(run_id: &str, input: &serde_json::value::RawValue) -> NewRun {
    serde_json::from_value(serde_json::json!({
        "run_id": run_id,
        "flow": "chain",
        "flow_version": "",
        "plugins": {},
        "input": input,
        "accepted_at": flowhost_ms(SystemTime::now()),
        "idempotency_key": null,
        "derived_from": null,
    }))
    .unwrap()
}

/// The writes of one 3-step run: accepted, started, three steps journaled
/// (1 KB outputs), finished.
async fn write_one_run(store: &dyn Store, run_id: &str, doc: &serde_json::value::RawValue) {
    store.accept(vec![new_run(run_id, doc)]).await.unwrap();
    store.started(run_id, SystemTime::now()).await.unwrap();
    let mut steps = Vec::new();
    for (i, id) in ["one", "two", "three"].iter().enumerate() {
        let record = serde_json::json!({
            "path": id, "kind": "plugin", "plugin": "echo", "version": "0123456789abcdef",
            "status": "succeeded", "start_ms": i as f64, "duration_ms": 0.2,
            "attempts": [{"attempt": 1, "start_ms": i as f64, "duration_ms": 0.2, "fuel": 12345, "peak_memory": 1114112}],
            "breaker_open": false,
        });
        let entry: StepEntry = serde_json::from_value(serde_json::json!({
            "path": id, "record": record, "output": doc,
        }))
        .unwrap();
        store.journal(run_id, entry).await.unwrap();
        steps.push(record);
    }
    let finished: RunRecord = serde_json::from_value(serde_json::json!({
        "run_id": run_id, "flow": "chain", "status": "succeeded",
        "started_at": "2026-11-30T00:00:00.000Z", "duration_ms": 1.0,
        "output": doc, "steps": steps,
    }))
    .unwrap();
    store.finish(Arc::new(finished)).await.unwrap();
}

fn flowhost_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls the server until one run has finished; returns its id.
async fn wait_for_one(server: &Server) -> String {
    let addr = server.addr();
    loop {
        let mut conn = common::http_load::Conn::open(addr).await.unwrap();
        let (_, body) = conn.get("/runs?status=succeeded&limit=1").await.unwrap();
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(id) = page["runs"][0]["run_id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
