//! A test step for the host's `sql` interface, written against the WIT with
//! `wit-bindgen` directly. It interprets a list of operations, from its
//! config's `ops` (in a flow file) or else its input's, and returns each
//! one's result, so every test is data:
//!
//! ```json
//! {"ops": [
//!   {"op": "execute", "db": "orders", "sql": "INSERT INTO t VALUES (?1)", "params": ["x"]},
//!   {"op": "query", "db": "orders", "sql": "SELECT * FROM t"},
//!   {"op": "batch", "db": "orders", "statements": [{"sql": "...", "params": []}]},
//!   {"op": "begin", "db": "orders"},
//!   {"op": "tx_execute", "tx": 0, "sql": "...", "params": []},
//!   {"op": "tx_query", "tx": 0, "sql": "..."},
//!   {"op": "commit", "tx": 0}, {"op": "rollback", "tx": 0}, {"op": "drop", "tx": 0},
//!   {"op": "fail"}
//! ]}
//! ```
//!
//! Parameters: JSON null, booleans, integers, other numbers (reals),
//! strings, and `{"blob": [bytes]}`. The output is `{"results": [...]}`,
//! each `{"ok": VALUE}` (a query's rows parsed) or `{"error": {"kind":
//! "denied|invalid|rejected|too-large|unavailable", "message": "..."}}`.
//! `fail` returns a permanent step error at once, with transactions open.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "step", path: "../../../wit" });
}

use bindings::flowhost::step::sql::{self, Error, Statement, Transaction, Value};
use bindings::{Context, Guest, Metadata, StepError};
use serde_json::{Value as Json, json};

struct SqlStep;

impl Guest for SqlStep {
    fn describe() -> Metadata {
        Metadata {
            name: "sql".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn run(ctx: Context, input: String) -> Result<String, StepError> {
        let bad = |what: &str, e: serde_json::Error| StepError::InvalidInput(format!("{what}: {e}"));
        let config: Json = serde_json::from_str(&ctx.config).map_err(|e| bad("config", e))?;
        let input: Json = serde_json::from_str(&input).map_err(|e| bad("input", e))?;
        let ops = match config.get("ops") {
            Some(ops) => ops.clone(),
            None => input.get("ops").cloned().unwrap_or(Json::Null),
        };
        let ops = ops
            .as_array()
            .ok_or_else(|| StepError::InvalidInput("no `ops` list in the config or the input".into()))?;
        let mut txs: Vec<Option<Transaction>> = Vec::new();
        let mut results = Vec::new();
        for op in ops {
            if op["op"] == "fail" {
                return Err(StepError::Permanent("failed on purpose, transactions open".into()));
            }
            results.push(match one(op, &mut txs)? {
                Ok(value) => json!({"ok": value}),
                Err(e) => error(e),
            });
        }
        Ok(json!({"results": results}).to_string())
    }
}

fn one(op: &Json, txs: &mut Vec<Option<Transaction>>) -> Result<Result<Json, Error>, StepError> {
    let text = |key: &str| op[key].as_str().unwrap_or_default().to_string();
    let params = || params(&op["params"]);
    let tx = |txs: &mut Vec<Option<Transaction>>| -> Result<Transaction, StepError> {
        let i = op["tx"].as_u64().unwrap_or(0) as usize;
        txs.get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| StepError::InvalidInput(format!("no transaction {i}")))
    };
    Ok(match op["op"].as_str().unwrap_or_default() {
        "query" => sql::query(&text("db"), &text("sql"), &params()?).map(rows),
        "execute" => sql::execute(&text("db"), &text("sql"), &params()?).map(Json::from),
        "batch" => {
            let mut statements = Vec::new();
            for s in op["statements"].as_array().into_iter().flatten() {
                statements.push(Statement {
                    sql: s["sql"].as_str().unwrap_or_default().to_string(),
                    params: self::params(&s["params"])?,
                });
            }
            sql::batch(&text("db"), &statements).map(Json::from)
        }
        "begin" => sql::begin(&text("db")).map(|t| {
            txs.push(Some(t));
            json!({"tx": txs.len() - 1})
        }),
        "tx_query" | "tx_execute" => {
            let i = op["tx"].as_u64().unwrap_or(0) as usize;
            let t = tx(txs)?;
            let result = if op["op"] == "tx_query" {
                t.query(&text("sql"), &params()?).map(rows)
            } else {
                t.execute(&text("sql"), &params()?).map(Json::from)
            };
            txs[i] = Some(t);
            result
        }
        "commit" | "rollback" => {
            let i = op["tx"].as_u64().unwrap_or(0) as usize;
            let t = tx(txs)?;
            let result = if op["op"] == "commit" { t.commit() } else { t.rollback() };
            // Kept: using it afterwards shows the host's answer.
            txs[i] = Some(t);
            result.map(|()| Json::Null)
        }
        "drop" => {
            drop(tx(txs)?);
            Ok(Json::Null)
        }
        other => return Err(StepError::InvalidInput(format!("unknown op `{other}`"))),
    })
}

fn rows(text: String) -> Json {
    serde_json::from_str(&text).unwrap_or(Json::String(text))
}

fn params(list: &Json) -> Result<Vec<Value>, StepError> {
    let mut out = Vec::new();
    for p in list.as_array().into_iter().flatten() {
        out.push(match p {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Real(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => Value::Text(s.clone()),
            Json::Object(o) if o.contains_key("blob") => Value::Blob(
                o["blob"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| b.as_u64().unwrap_or(0) as u8)
                    .collect(),
            ),
            other => return Err(StepError::InvalidInput(format!("not a parameter: {other}"))),
        });
    }
    Ok(out)
}

fn error(e: Error) -> Json {
    let (kind, message) = match e {
        Error::Denied(m) => ("denied", m),
        Error::Invalid(m) => ("invalid", m),
        Error::Rejected(m) => ("rejected", m),
        Error::TooLarge(m) => ("too-large", m),
        Error::Unavailable(m) => ("unavailable", m),
    };
    json!({"error": {"kind": kind, "message": message}})
}

bindings::export!(SqlStep with_types_in bindings);
