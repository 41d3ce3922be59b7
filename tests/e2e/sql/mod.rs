//! Steps reach SQL databases: declared to the host, granted per step, used
//! through the `testing/sql` step, which runs the operations its test gives
//! it and reports each result or typed error.

mod load;
mod postgres;
mod serve;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flowhost::sql::{DatabaseConfig, Databases};
use flowhost::{CallOptions, CallReport, Grants, Limits, Services};
use serde_json::{Value, json};

use crate::support::call;

/// Opens `configs` (relative SQLite paths from `dir`).
pub(crate) async fn open(
    configs: &[(&str, DatabaseConfig)],
    dir: &std::path::Path,
) -> Arc<Databases> {
    let configs: BTreeMap<String, DatabaseConfig> = configs
        .iter()
        .map(|(n, c)| (n.to_string(), c.clone()))
        .collect();
    Arc::new(
        Databases::open(&configs, dir)
            .await
            .expect("open the databases"),
    )
}

/// Call options granting `grants` of `dbs`, with a deadline of `timeout`.
pub(crate) fn options(dbs: &Arc<Databases>, grants: &[&str], timeout: Duration) -> CallOptions {
    CallOptions {
        grants: Grants {
            sql: grants.iter().map(|g| g.to_string()).collect(),
            ..Grants::default()
        },
        services: Services::new().databases(dbs.clone()),
        limits: Some(Limits {
            timeout,
            ..Limits::default()
        }),
        ..CallOptions::default()
    }
}

/// Runs `ops` in one call of the step; the whole report.
pub(crate) async fn call_ops(options: CallOptions, ops: Value) -> CallReport {
    call(
        "testing/sql",
        &json!({"ops": ops}).to_string(),
        "{}",
        options,
    )
    .await
}

/// Runs `ops` in one call granted `grants` of `dbs`; each op's result.
pub(crate) async fn ops(dbs: &Arc<Databases>, grants: &[&str], ops: Value) -> Vec<Value> {
    let report = call_ops(options(dbs, grants, Duration::from_secs(10)), ops).await;
    let out = report
        .result
        .unwrap_or_else(|e| panic!("the step failed: {e}"));
    let out: Value = serde_json::from_str(&out).unwrap();
    out["results"].as_array().unwrap().clone()
}

/// The rows of one `query` of `sql` on `db` (granted).
pub(crate) async fn rows(dbs: &Arc<Databases>, db: &str, sql: &str) -> Value {
    let results = ops(dbs, &[db], json!([{"op": "query", "db": db, "sql": sql}])).await;
    results[0]["ok"].clone()
}

/// An op's typed error: (kind, message); panics when it succeeded.
pub(crate) fn error(result: &Value) -> (String, String) {
    let e = &result["error"];
    assert!(e.is_object(), "expected an error, got {result}");
    (
        e["kind"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}
