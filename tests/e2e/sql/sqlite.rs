//! SQLite: transactions all or nothing, rollback of what is not committed,
//! bound parameters, typed errors and caps, and the deadline interrupting a
//! statement inside SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowhost::sql::{DatabaseConfig, Databases};
use flowhost::{ErrorKind, Executor, RunStatus};
use serde_json::json;

use super::{call_ops, error, open, ops, options, rows};
use crate::support::{host, run_flow_with};

/// `orders` (a table `orders(id INTEGER PRIMARY KEY, note TEXT)`) in a
/// fresh folder, with a pool of `pool_size`.
async fn orders(pool_size: u32) -> (tempfile::TempDir, Arc<Databases>) {
    let dir = tempfile::tempdir().unwrap();
    let config = DatabaseConfig {
        pool_size,
        max_rows: 5,
        max_bytes: 200,
        ..DatabaseConfig::new("sqlite:orders.db")
    };
    let dbs = open(&[("orders", config)], dir.path()).await;
    let create = json!([{"op": "execute", "db": "orders",
        "sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)"}]);
    assert_eq!(ops(&dbs, &["orders"], create).await, [json!({"ok": 0})]);
    (dir, dbs)
}

fn insert(id: i64, note: &str) -> serde_json::Value {
    json!({"sql": "INSERT INTO orders (id, note) VALUES (?1, ?2)", "params": [id, note]})
}

#[tokio::test]
async fn a_batch_with_a_failing_statement_leaves_nothing_behind() {
    let (dir, dbs) = orders(4).await;
    assert!(
        dir.path().join("orders.db").exists(),
        "relative to the config folder"
    );
    let results = ops(&dbs, &["orders"], json!([
        {"op": "batch", "db": "orders", "statements": [insert(1, "a"), insert(2, "b"), insert(1, "again")]},
        {"op": "batch", "db": "orders", "statements": [insert(3, "c"), insert(4, "d")]},
    ]))
    .await;
    let (kind, message) = error(&results[0]);
    assert_eq!(kind, "rejected");
    assert!(
        message.starts_with("statement 2: database `orders`: UNIQUE constraint failed: orders.id")
            && message.ends_with("nothing of the batch was applied"),
        "{message}"
    );
    assert_eq!(results[1], json!({"ok": [1, 1]}));
    assert_eq!(
        rows(&dbs, "orders", "SELECT id FROM orders ORDER BY id").await,
        json!([{"id": 3}, {"id": 4}])
    );
}

#[tokio::test]
async fn a_transaction_not_committed_is_rolled_back() {
    let (_dir, dbs) = orders(1).await;
    // Dropped, left open at the step's end, left open by a failing step:
    // each rolled back, and the one connection of the pool is free again.
    let results = ops(
        &dbs,
        &["orders"],
        json!([
            {"op": "begin", "db": "orders"},
            {"op": "tx_execute", "tx": 0, "sql": "INSERT INTO orders VALUES (1, 'dropped')"},
            {"op": "drop", "tx": 0},
            {"op": "begin", "db": "orders"},
            {"op": "tx_execute", "tx": 1, "sql": "INSERT INTO orders VALUES (2, 'left open')"},
        ]),
    )
    .await;
    assert_eq!(results[4], json!({"ok": 1}), "{results:?}");
    let failed = call_ops(
        options(&dbs, &["orders"], Duration::from_secs(10)),
        json!([
            {"op": "begin", "db": "orders"},
            {"op": "tx_execute", "tx": 0, "sql": "INSERT INTO orders VALUES (3, 'failed')"},
            {"op": "fail"},
        ]),
    )
    .await;
    assert_eq!(failed.result.unwrap_err().kind(), ErrorKind::Permanent);
    assert_eq!(
        rows(&dbs, "orders", "SELECT * FROM orders").await,
        json!([])
    );

    let results = ops(
        &dbs,
        &["orders"],
        json!([
            {"op": "begin", "db": "orders"},
            {"op": "tx_execute", "tx": 0, "sql": "INSERT INTO orders VALUES (4, 'kept')"},
            {"op": "tx_query", "tx": 0, "sql": "SELECT note FROM orders"},
            {"op": "commit", "tx": 0},
            {"op": "tx_query", "tx": 0, "sql": "SELECT 1"},
        ]),
    )
    .await;
    assert_eq!(results[2], json!({"ok": [{"note": "kept"}]}));
    assert_eq!(results[3], json!({"ok": null}));
    assert_eq!(
        error(&results[4]),
        (
            "unavailable".into(),
            "database `orders`: the transaction was already committed".into()
        )
    );
    let results = ops(
        &dbs,
        &["orders"],
        json!([
            {"op": "begin", "db": "orders"},
            {"op": "tx_execute", "tx": 0, "sql": "DELETE FROM orders"},
            {"op": "rollback", "tx": 0},
            {"op": "commit", "tx": 0},
        ]),
    )
    .await;
    assert_eq!(results[2], json!({"ok": null}));
    assert_eq!(
        error(&results[3]),
        (
            "unavailable".into(),
            "database `orders`: the transaction was already rolled back".into()
        )
    );
    assert_eq!(
        rows(&dbs, "orders", "SELECT id FROM orders").await,
        json!([{"id": 4}])
    );
}

#[tokio::test]
async fn a_committed_transaction_is_seen_by_the_next_step() {
    let (_dir, dbs) = orders(4).await;
    let exec = Executor::with_services(host().clone(), flowhost::Services::new().databases(dbs));
    let flow = r#"
flow: save_then_read
steps:
  - id: save
    plugin: sql
    allow: {sql: [orders]}
    config:
      ops:
        - {op: begin, db: orders}
        - {op: tx_execute, tx: 0, sql: "INSERT INTO orders VALUES (?1, ?2)", params: [7, "saved"]}
        - {op: commit, tx: 0}
  - id: read
    plugin: sql
    allow: {sql: [orders]}
    config:
      ops:
        - {op: query, db: orders, sql: "SELECT id, note FROM orders"}
  - id: sneak
    plugin: sql
    config:
      ops:
        - {op: query, db: orders, sql: "SELECT id FROM orders"}
  - id: both
    plugin: echo
    input:
      read: "${steps.read.output}"
      sneak: "${steps.sneak.output}"
"#;
    let record = run_flow_with(&exec, flow, json!({})).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let out: serde_json::Value =
        serde_json::from_str(record.output.as_ref().unwrap().get()).unwrap();
    assert_eq!(
        out["read"]["results"][0],
        json!({"ok": [{"id": 7, "note": "saved"}]})
    );
    let out = &out["sneak"];
    assert_eq!(
        error(&out["results"][0]),
        (
            "denied".into(),
            "step `sneak` may not use database `orders`: it is not in the step's `allow: {sql: [...]}`".into()
        )
    );
}

#[tokio::test]
async fn an_injection_attempt_is_stored_as_text() {
    let (_dir, dbs) = orders(4).await;
    let attack = "'); DROP TABLE orders; --";
    let results = ops(&dbs, &["orders"], json!([
        {"op": "execute", "db": "orders", "sql": "INSERT INTO orders (id, note) VALUES (1, ?1)", "params": [attack]},
        {"op": "execute", "db": "orders", "sql": "SELECT 1; DROP TABLE orders"},
    ]))
    .await;
    assert_eq!(results[0], json!({"ok": 1}));
    assert_eq!(error(&results[1]).0, "invalid", "one statement per call");
    assert_eq!(
        rows(&dbs, "orders", "SELECT note FROM orders").await,
        json!([{"note": attack}])
    );
}

#[tokio::test]
async fn denials_caps_and_mistakes_are_typed_errors() {
    let (_dir, dbs) = orders(4).await;
    let fill: Vec<_> = (1..=6).map(|i| insert(i, "0123456789")).collect();
    let results = ops(&dbs, &["orders", "ghost"], json!([
        {"op": "batch", "db": "orders", "statements": fill},
        {"op": "query", "db": "secret", "sql": "SELECT 1"},
        {"op": "query", "db": "ghost", "sql": "SELECT 1"},
        {"op": "query", "db": "orders", "sql": "SELECT id FROM orders"},
        {"op": "query", "db": "orders", "sql": "SELECT note, note AS again, note AS third FROM orders LIMIT 5"},
        {"op": "query", "db": "orders", "sql": "SELEC 1"},
        {"op": "query", "db": "orders", "sql": "SELECT ?1, ?2", "params": [1]},
        {"op": "query", "db": "orders", "sql": "SELECT 1 AS n, 2.5 AS r, NULL AS z, 'x' AS t, x'00ff' AS b, ?1 AS yes", "params": [true]},
    ]))
    .await;
    assert_eq!(results[0], json!({"ok": [1, 1, 1, 1, 1, 1]}));
    assert_eq!(
        error(&results[1]),
        ("denied".into(), "step `sql` may not use database `secret`: it is not in the step's `allow: {sql: [...]}`".into())
    );
    assert_eq!(
        error(&results[2]),
        ("denied".into(), "step `sql` may not use database `ghost`: the host declares no such database (`[databases.ghost]` in flowhost.toml)".into())
    );
    assert_eq!(
        error(&results[3]),
        (
            "too-large".into(),
            "database `orders`: the result has more than 5 rows (its `max_rows`)".into()
        )
    );
    assert_eq!(
        error(&results[4]),
        (
            "too-large".into(),
            "database `orders`: the result is larger than 200 bytes of JSON (its `max_bytes`)"
                .into()
        )
    );
    let (kind, message) = error(&results[5]);
    assert_eq!(kind, "invalid");
    assert!(
        message.starts_with("database `orders`: ") && message.contains("syntax error"),
        "{message}"
    );
    assert_eq!(
        error(&results[6]),
        (
            "invalid".into(),
            "database `orders`: the statement takes 2 parameters; 1 given".into()
        )
    );
    assert_eq!(
        results[7],
        json!({"ok": [{"n": 1, "r": 2.5, "z": null, "t": "x", "b": "AP8=", "yes": 1}]})
    );
}

#[tokio::test]
async fn the_deadline_interrupts_a_long_statement() {
    let (_dir, dbs) = orders(1).await;
    let forever =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let started = Instant::now();
    let report = call_ops(
        options(&dbs, &["orders"], Duration::from_secs(1)),
        json!([{"op": "query", "db": "orders", "sql": forever}]),
    )
    .await;
    assert_eq!(report.result.unwrap_err().kind(), ErrorKind::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The pool's one connection is back, interrupted: the next call gets it
    // at once rather than after the statement would have ended (never).
    let started = Instant::now();
    assert_eq!(
        rows(&dbs, "orders", "SELECT 1 AS one").await,
        json!([{"one": 1}])
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn flowhost_run_opens_the_databases_of_its_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowhost.toml"),
        "[databases.orders]\nurl = \"sqlite:orders.db\"\n",
    )
    .unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        r#"flow: cli
steps:
  - id: save
    plugin: sql
    allow: {sql: [orders]}
    config:
      ops:
        - {op: execute, db: orders, sql: "CREATE TABLE t (x)"}
        - {op: execute, db: orders, sql: "INSERT INTO t VALUES (?1)", params: [42]}
        - {op: query, db: orders, sql: "SELECT x FROM t"}
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = crate::support::run(
        crate::support::flowhost()
            .arg("run")
            .arg(&flow)
            .args(["--plugins", &crate::support::plugins(), "--config"])
            .arg(dir.path().join("flowhost.toml")),
    );
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["results"][2], json!({"ok": [{"x": 42}]}));
    assert!(
        dir.path().join("orders.db").exists(),
        "beside the config file"
    );

    std::fs::write(
        dir.path().join("flowhost.toml"),
        "[databases.orders]\nurl = \"mysql://x\"\n",
    )
    .unwrap();
    let (code, _, stderr) = crate::support::run(
        crate::support::flowhost()
            .arg("run")
            .arg(&flow)
            .args(["--plugins", &crate::support::plugins(), "--config"])
            .arg(dir.path().join("flowhost.toml")),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("invalid `databases.orders.url`: it must be `sqlite:PATH` or `postgres://"),
        "{stderr}"
    );
}

/// `$N` and `?N` take the Nth parameter wherever they stand, as on
/// PostgreSQL, so one SQL text serves both; `?` takes the next.
#[tokio::test]
async fn numbered_parameters_bind_by_their_number() {
    let (_dir, dbs) = orders(1).await;
    let results = ops(&dbs, &["orders"], json!([
        {"op": "execute", "db": "orders", "sql": "INSERT INTO orders (note, id) VALUES ($2, $1)", "params": [1, "one"]},
        {"op": "execute", "db": "orders", "sql": "INSERT INTO orders (note, id) VALUES (?2 || ?2, ?1)", "params": [2, "two"]},
        {"op": "execute", "db": "orders", "sql": "INSERT INTO orders (id, note) VALUES (?, ?)", "params": [3, "three"]},
        {"op": "execute", "db": "orders", "sql": "INSERT INTO orders (id, note) VALUES ($1, $3)", "params": [4, "x"]},
    ]))
    .await;
    assert_eq!(
        results[..3],
        [json!({"ok": 1}), json!({"ok": 1}), json!({"ok": 1})]
    );
    assert_eq!(
        error(&results[3]),
        (
            "invalid".into(),
            "database `orders`: the statement takes 3 parameters; 2 given".into()
        )
    );
    assert_eq!(
        rows(&dbs, "orders", "SELECT id, note FROM orders ORDER BY id").await,
        json!([{"id": 1, "note": "one"}, {"id": 2, "note": "twotwo"}, {"id": 3, "note": "three"}])
    );
}
