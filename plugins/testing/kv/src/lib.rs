//! Interprets a list of key-value operations from its input and returns
//! each one's result, so tests can drive the host's `kv` interface:
//!
//! ```json
//! {"ops": [{"op": "incr", "ns": "counters", "key": "k", "delta": 1},
//!          {"op": "set", "ns": "n", "key": "k", "value": "v", "ttl_ms": 500},
//!          {"op": "get", "ns": "n", "key": "k"},
//!          {"op": "delete", "ns": "n", "key": "k"},
//!          {"op": "cas", "ns": "n", "key": "k", "expected": null, "value": "v"}]}
//! ```
//!
//! `key_len` or `value_len` stand for a key or value of that many `x`s.
//! Output: `{"results": [{"ok": ...} or {"error": {"kind": ..., "message": ...}}]}`.

use flowhost_sdk::bindings::flowhost::step::kv::{self, Error};
use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    ops: Vec<Op>,
}

#[derive(Deserialize)]
struct Op {
    op: String,
    ns: String,
    #[serde(default)]
    key: String,
    key_len: Option<usize>,
    #[serde(default)]
    value: String,
    value_len: Option<usize>,
    ttl_ms: Option<u64>,
    #[serde(default)]
    delta: i64,
    #[serde(default)]
    expected: Option<String>,
}

struct Kv;

impl Step for Kv {
    type Input = Input;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, input: Input) -> Result<Value, StepError> {
        let results: Vec<Value> = input.ops.iter().map(apply).collect();
        Ok(json!({ "results": results }))
    }
}

fn apply(op: &Op) -> Value {
    let key = match op.key_len {
        Some(n) => "x".repeat(n),
        None => op.key.clone(),
    };
    let value = match op.value_len {
        Some(n) => "x".repeat(n),
        None => op.value.clone(),
    };
    let ns = op.ns.as_str();
    let answer = match op.op.as_str() {
        "get" => kv::get(ns, &key).map(|v| json!(v)),
        "set" => kv::set(ns, &key, &value, op.ttl_ms).map(|()| Value::Null),
        "delete" => kv::delete(ns, &key).map(|b| json!(b)),
        "incr" => kv::increment(ns, &key, op.delta).map(|n| json!(n)),
        "cas" => kv::compare_and_swap(ns, &key, op.expected.as_deref(), &value).map(|b| json!(b)),
        other => return json!({ "error": { "kind": "unknown-op", "message": other } }),
    };
    match answer {
        Ok(v) => json!({ "ok": v }),
        Err(e) => {
            let (kind, message) = match e {
                Error::Denied(m) => ("denied", m),
                Error::Invalid(m) => ("invalid", m),
                Error::Unavailable(m) => ("unavailable", m),
            };
            json!({ "error": { "kind": kind, "message": message } })
        }
    }
}

export_step!(Kv);
