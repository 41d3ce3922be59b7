//! What the `sql` interface costs: a `select` by primary key from a step
//! (the `testing/sql` step) against the same query made natively with the
//! same driver and a pool of the same size, on SQLite and on a throwaway
//! PostgreSQL, side by side in one run.
//!
//! Run with `cargo bench -p flowhost --bench sql` (plugins are built first;
//! PostgreSQL's server programs must be installed, see the README's setup
//! command; `FLOWHOST_BENCH_QUICK=1` runs 50 times fewer queries). Prints,
//! per backend: the median of one call doing one select against one native
//! select, and the time per select in calls of 100 selects against native
//! selects one after another; the overhead and the ratio of each.

mod common;
// Shared with the store's unit tests; the bench uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "../src/store/tests/throwaway_pg.rs"]
mod throwaway_pg;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{median, us};
use flowhost::sql::{DatabaseConfig, Databases};
use flowhost::{CallOptions, Context, Grants, Host, Plugin, Services};
use serde_json::json;
use throwaway_pg::ThrowawayPg;

const ROWS: i64 = 1000;
const CALLS: usize = 2000;
const BATCHED: usize = 100;
const QUICK: usize = 50;
const POOL: u32 = 4;

fn main() {
    let dist = common::build_plugins("build.sh");
    let quick = std::env::var_os("FLOWHOST_BENCH_QUICK").is_some();
    let calls = if quick { CALLS / QUICK } else { CALLS };
    let dir = tempfile::tempdir().unwrap();
    let pg = ThrowawayPg::start();
    let pg_url = pg.create_db("bench");
    let rt = common::runtime();
    rt.block_on(async {
        let host = Host::new(flowhost::Config::default()).unwrap();
        let step = host.load(dist.join("testing/sql.wasm")).await.unwrap();
        let sqlite_path = dir.path().join("bench.db");
        let configs = BTreeMap::from([
            ("lite".to_string(), config("sqlite:bench.db")),
            ("pg".to_string(), config(&pg_url)),
        ]);
        let dbs = Arc::new(Databases::open(&configs, dir.path()).await.unwrap());
        let bench = Bench {
            host: &host,
            step: &step,
            dbs: &dbs,
        };
        for db in ["lite", "pg"] {
            let create = "CREATE TABLE t (id bigint PRIMARY KEY, note text)";
            let fill = if db == "pg" {
                format!("INSERT INTO t SELECT g, 'note ' || g FROM generate_series(1, {ROWS}) g")
            } else {
                format!(
                    "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {ROWS}) \
                     INSERT INTO t SELECT v, 'note ' || v FROM s"
                )
            };
            bench.call(db, json!([{"op": "execute", "db": db, "sql": create}])).await;
            bench.call(db, json!([{"op": "execute", "db": db, "sql": fill}])).await;
        }
        println!("sql: one select by primary key, {calls} times (median; per select in calls of {BATCHED})");
        println!("{:<10} {:>12} {:>12} {:>10} {:>8} {:>14} {:>12} {:>8}", "backend", "step call", "native", "overhead", "ratio", "in-call/sel", "native/sel", "ratio");
        let lite = native_sqlite(&sqlite_path);
        let pg_pool = native_pg(&pg_url);
        for db in ["lite", "pg"] {
            let sql = if db == "pg" { "SELECT id, note FROM t WHERE id = $1" } else { "SELECT id, note FROM t WHERE id = ?1" };
            let mut step_times = Vec::with_capacity(calls);
            let mut native_times = Vec::with_capacity(calls);
            for i in 0..calls {
                let key = (i as i64 % ROWS) + 1;
                let started = Instant::now();
                bench.call(db, json!([{"op": "query", "db": db, "sql": sql, "params": [key]}])).await;
                step_times.push(started.elapsed());
                let started = Instant::now();
                match db {
                    "lite" => lite.select(sql, key).await,
                    _ => pg_select(&pg_pool, sql, key).await,
                }
                native_times.push(started.elapsed());
            }
            let ops: Vec<_> = (0..BATCHED)
                .map(|i| json!({"op": "query", "db": db, "sql": sql, "params": [(i as i64 % ROWS) + 1]}))
                .collect();
            let rounds = (calls / BATCHED).max(1);
            let started = Instant::now();
            for _ in 0..rounds {
                bench.call(db, json!(ops)).await;
            }
            let in_call = started.elapsed() / (rounds * BATCHED) as u32;
            let started = Instant::now();
            for i in 0..rounds * BATCHED {
                let key = (i as i64 % ROWS) + 1;
                match db {
                    "lite" => lite.select(sql, key).await,
                    _ => pg_select(&pg_pool, sql, key).await,
                }
            }
            let native_each = started.elapsed() / (rounds * BATCHED) as u32;
            let (s, n) = (median(step_times), median(native_times));
            println!(
                "{:<10} {:>10.1}µs {:>10.1}µs {:>8.1}µs {:>7.1}x {:>12.1}µs {:>10.1}µs {:>7.2}x",
                if db == "pg" { "postgres" } else { "sqlite" },
                us(s),
                us(n),
                us(s.saturating_sub(n)),
                us(s) / us(n).max(0.001),
                us(in_call),
                us(native_each),
                us(in_call) / us(native_each).max(0.001),
            );
        }
    });
    drop(pg);
}

fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        pool_size: POOL,
        ..DatabaseConfig::new(url)
    }
}

struct Bench<'a> {
    host: &'a Host,
    step: &'a Plugin,
    dbs: &'a Arc<Databases>,
}

impl Bench<'_> {
    /// One call of the step running `ops`; panics unless every op succeeded.
    async fn call(&self, db: &str, ops: serde_json::Value) {
        let options = CallOptions {
            grants: Grants {
                sql: vec![db.to_string()],
                ..Grants::default()
            },
            services: Services::new().databases(self.dbs.clone()),
            ..CallOptions::default()
        };
        let ctx = Context::direct(self.step.name());
        let input = json!({"ops": ops}).to_string();
        let out = self
            .host
            .call_with(self.step, &ctx, &input, &options)
            .await
            .result
            .unwrap();
        assert!(!out.contains("\"error\""), "{out}");
    }
}

/// Native SQLite: the same driver, connections pooled the same way (taken
/// from a list, used on the blocking pool).
struct NativeSqlite {
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
}

fn native_sqlite(path: &std::path::Path) -> NativeSqlite {
    let conns = (0..POOL)
        .map(|_| {
            let c = rusqlite::Connection::open(path).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c
        })
        .collect();
    NativeSqlite {
        idle: Arc::new(Mutex::new(conns)),
    }
}

impl NativeSqlite {
    async fn select(&self, sql: &'static str, key: i64) {
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let conn = idle.lock().unwrap().pop().unwrap();
            {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let mut rows = stmt.query([key]).unwrap();
                let row = rows.next().unwrap().unwrap();
                let _: (i64, String) = (row.get(0).unwrap(), row.get(1).unwrap());
            }
            idle.lock().unwrap().push(conn);
        })
        .await
        .unwrap();
    }
}

/// Native PostgreSQL: deadpool-postgres of the same size, statements
/// prepared once per connection.
fn native_pg(url: &str) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(POOL as usize)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap()
}

async fn pg_select(pool: &deadpool_postgres::Pool, sql: &str, key: i64) {
    let client = pool.get().await.unwrap();
    let stmt = client.prepare_cached(sql).await.unwrap();
    let row = client.query_one(&stmt, &[&key]).await.unwrap();
    let _: (i64, String) = (row.get(0), row.get(1));
}
