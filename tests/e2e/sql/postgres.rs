//! PostgreSQL, on a throwaway server the tests start: types both ways,
//! transactions, the deadline cancelling a statement on the server, and a
//! database down at start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowhost::ErrorKind;
use flowhost::sql::{DatabaseConfig, Databases};
use serde_json::json;

use super::{call_ops, error, open, ops, options, rows};
use crate::support::pg::Db;

/// A fresh database `pg` with a table `orders(id int PRIMARY KEY, note text)`.
pub(crate) async fn orders(pool_size: u32) -> (Db, Arc<Databases>) {
    let db = Db::fresh();
    let config = DatabaseConfig {
        pool_size,
        ..DatabaseConfig::new(db.url())
    };
    let dbs = open(&[("pg", config)], std::path::Path::new(".")).await;
    let create = json!([{"op": "execute", "db": "pg",
        "sql": "CREATE TABLE orders (id int PRIMARY KEY, note text)"}]);
    assert_eq!(ops(&dbs, &["pg"], create).await, [json!({"ok": 0})]);
    (db, dbs)
}

#[tokio::test]
async fn types_travel_both_ways() {
    let (_db, dbs) = orders(2).await;
    let results = ops(&dbs, &["pg"], json!([
        {"op": "execute", "db": "pg", "sql": "CREATE TABLE t (b bool, s int2, i int4, l int8, f float4, d float8, n numeric(10,2), \
            v varchar(10), c char(3), j json, jb jsonb, u uuid, ts timestamp, tz timestamptz, dt date, by bytea)"},
        {"op": "execute", "db": "pg", "sql": "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
            $13::text::timestamp, $14::text::timestamptz, $15::text::date, $16)",
         "params": [true, 7, 70000, 9_000_000_000i64, 1.5, 2.25, "12.5", "short", "abc", "{\"a\": [1]}", 12,
                    "67e55044-10b1-426f-9247-bb680e5fe0c8", "2024-02-29 13:14:15.5", "2024-02-29 13:14:15+02", "2024-02-29", {"blob": [0, 255]}]},
        {"op": "query", "db": "pg", "sql": "SELECT * FROM t"},
        {"op": "query", "db": "pg", "sql": "SELECT NULL::int AS z, 'x'::name AS nm, 12::numeric AS whole, -0.05::numeric AS small"},
        {"op": "execute", "db": "pg", "sql": "INSERT INTO orders VALUES ($1, $2)", "params": ["seven", "x"]},
        {"op": "execute", "db": "pg", "sql": "INSERT INTO orders VALUES ($1, $2)", "params": [70000000000i64, "x"]},
        {"op": "query", "db": "pg", "sql": "SELECT '1 day'::interval AS span"},
    ]))
    .await;
    assert_eq!(results[1], json!({"ok": 1}), "{results:?}");
    assert_eq!(
        results[2],
        json!({"ok": [{
            "b": true, "s": 7, "i": 70000, "l": 9_000_000_000i64, "f": 1.5, "d": 2.25, "n": "12.50",
            "v": "short", "c": "abc", "j": {"a": [1]}, "jb": 12,
            "u": "67e55044-10b1-426f-9247-bb680e5fe0c8", "ts": "2024-02-29T13:14:15.500000",
            "tz": "2024-02-29T11:14:15Z", "dt": "2024-02-29", "by": "AP8="
        }]})
    );
    assert_eq!(
        results[3],
        json!({"ok": [{"z": null, "nm": "x", "whole": "12", "small": "-0.05"}]})
    );
    let (kind, message) = error(&results[4]);
    assert_eq!(kind, "invalid");
    assert_eq!(
        message,
        "database `pg`: parameter $1 (int4): text does not fit this type; convert it, or cast the parameter in the SQL (`$1::text`)"
    );
    assert_eq!(
        error(&results[5]),
        (
            "invalid".into(),
            "database `pg`: parameter $1 (int4): 70000000000 is out of range for int4".into()
        )
    );
    assert_eq!(
        error(&results[6]),
        (
            "invalid".into(),
            "database `pg`: column `span` has type interval, which cannot be read; cast it to text in the SQL (`span::text`)".into()
        )
    );
}

#[tokio::test]
async fn transactions_are_all_or_nothing_and_rolled_back_unless_committed() {
    let (_db, dbs) = orders(2).await;
    let insert = |id: i64| json!({"sql": "INSERT INTO orders VALUES ($1, 'n')", "params": [id]});
    let results = ops(
        &dbs,
        &["pg"],
        json!([
            {"op": "batch", "db": "pg", "statements": [insert(1), insert(2), insert(1)]},
            {"op": "begin", "db": "pg"},
            {"op": "tx_execute", "tx": 0, "sql": "INSERT INTO orders VALUES (10, 'dropped')"},
            {"op": "drop", "tx": 0},
            {"op": "begin", "db": "pg"},
            {"op": "tx_execute", "tx": 1, "sql": "INSERT INTO orders VALUES (11, 'left open')"},
        ]),
    )
    .await;
    let (kind, message) = error(&results[0]);
    assert_eq!(kind, "rejected");
    assert!(
        message.starts_with("statement 2: database `pg`: duplicate key value violates unique constraint \"orders_pkey\" (SQLSTATE 23505)"),
        "{message}"
    );
    assert_eq!(results[5], json!({"ok": 1}));
    let results = ops(
        &dbs,
        &["pg"],
        json!([
            {"op": "begin", "db": "pg"},
            {"op": "tx_execute", "tx": 0, "sql": "INSERT INTO orders VALUES (12, 'kept')"},
            {"op": "commit", "tx": 0},
            {"op": "tx_execute", "tx": 0, "sql": "SELECT 1"},
        ]),
    )
    .await;
    assert_eq!(results[2], json!({"ok": null}));
    assert_eq!(error(&results[3]).0, "unavailable");
    assert_eq!(
        rows(&dbs, "pg", "SELECT id FROM orders").await,
        json!([{"id": 12}])
    );
    // No connection was left inside a transaction.
    crate::support::poll_until(Duration::from_secs(5), "no idle transaction", || async {
        rows(&dbs, "pg", "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .await
            == json!([{"n": 0}])
    })
    .await;
}

#[tokio::test]
async fn an_injection_attempt_is_stored_as_text() {
    let (_db, dbs) = orders(2).await;
    let attack = "'); DROP TABLE orders; --";
    let results = ops(&dbs, &["pg"], json!([
        {"op": "execute", "db": "pg", "sql": "INSERT INTO orders VALUES (1, $1)", "params": [attack]},
        {"op": "query", "db": "pg", "sql": "SELECT note FROM orders"},
    ]))
    .await;
    assert_eq!(results[1], json!({"ok": [{"note": attack}]}));
}

#[tokio::test]
async fn the_deadline_cancels_the_statement_on_the_server() {
    let (_db, dbs) = orders(1).await;
    let started = Instant::now();
    let report = call_ops(
        options(&dbs, &["pg"], Duration::from_secs(1)),
        json!([{"op": "query", "db": "pg", "sql": "SELECT pg_sleep(30)::text AS slept"}]),
    )
    .await;
    assert_eq!(report.result.unwrap_err().kind(), ErrorKind::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let running = "SELECT count(*)::int AS n FROM pg_stat_activity \
        WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'";
    crate::support::poll_until(
        Duration::from_secs(5),
        "the sleep cancelled on the server",
        || async { rows(&dbs, "pg", running).await == json!([{"n": 0}]) },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn caps_and_denials_are_typed_errors() {
    let (db, _dbs) = orders(2).await;
    let config = DatabaseConfig {
        max_rows: 3,
        max_bytes: 100,
        ..DatabaseConfig::new(db.url())
    };
    let capped = open(&[("capped", config)], std::path::Path::new(".")).await;
    let results = ops(&capped, &["capped"], json!([
        {"op": "query", "db": "capped", "sql": "SELECT g AS n FROM generate_series(1, 1000000) g"},
        {"op": "query", "db": "capped", "sql": "SELECT repeat('x', 500) AS big"},
        {"op": "query", "db": "capped", "sql": "SELECT g AS n FROM generate_series(1, 3) g"},
        {"op": "query", "db": "pg", "sql": "SELECT 1"},
    ]))
    .await;
    assert_eq!(
        error(&results[0]),
        (
            "too-large".into(),
            "database `capped`: the result has more than 3 rows (its `max_rows`)".into()
        )
    );
    assert_eq!(
        error(&results[1]),
        (
            "too-large".into(),
            "database `capped`: the result is larger than 100 bytes of JSON (its `max_bytes`)"
                .into()
        )
    );
    assert_eq!(results[2], json!({"ok": [{"n": 1}, {"n": 2}, {"n": 3}]}));
    assert_eq!(error(&results[3]).0, "denied");
}

#[tokio::test]
async fn a_database_down_at_start_stops_nothing_and_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/none?connect_timeout=1");
    let dbs = open(
        &[("down", DatabaseConfig::new(url))],
        std::path::Path::new("."),
    )
    .await;
    let results = ops(
        &dbs,
        &["down"],
        json!([{"op": "query", "db": "down", "sql": "SELECT 1"}]),
    )
    .await;
    let (kind, message) = error(&results[0]);
    assert_eq!(kind, "unavailable");
    assert!(message.starts_with("database `down`: "), "{message}");
}

/// The `orders_db` example runs unchanged on PostgreSQL: the same SQL text
/// (`$N` parameters, `ON CONFLICT`), integers and reals sent as the
/// columns' types, one transaction per order, and saving twice replaces.
#[tokio::test]
async fn the_orders_db_example_runs_on_postgresql_too() {
    let db = Db::fresh();
    let dbs = open(
        &[("orders", DatabaseConfig::new(db.url()))],
        std::path::Path::new("."),
    )
    .await;
    let root = crate::support::root();
    let path = root.join("flows/examples/orders_db.yaml");
    let flow = crate::support::parse_at(&path, &std::fs::read_to_string(&path).unwrap());
    let plugins = crate::support::plugin_set(&flow).await;
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("flows/data/orders_db.input.json")).unwrap(),
    )
    .unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("flows/data/orders_db.output.json")).unwrap(),
    )
    .unwrap();
    let exec = flowhost::Executor::with_services(
        crate::support::host().clone(),
        flowhost::Services::new().databases(dbs.clone()),
    );
    for _ in 0..2 {
        let record = exec
            .run(
                &flow,
                &plugins,
                input.clone(),
                flowhost::RunOptions::default(),
            )
            .await;
        assert_eq!(
            record.status,
            flowhost::RunStatus::Succeeded,
            "{:?}",
            record.error
        );
        assert_eq!(record.output_value().unwrap(), expected);
    }
    assert_eq!(
        rows(&dbs, "orders", "SELECT count(*)::int AS n FROM order_lines").await,
        json!([{"n": 4}])
    );
}
