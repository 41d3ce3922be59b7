//! Steps in JavaScript, Python and C beside Rust: the examples, one flow
//! through all four languages, hostile steps in JavaScript and Python, and
//! the sql and kv helpers of each language.
//!
//! JavaScript and Python components are megabytes and take seconds to
//! compile: library tests share them through `support::plugin_once`, and only a
//! few tests run them in a `flowhost` subprocess.

use std::time::{Duration, Instant};

use flowhost::{CallError, CallOptions, CallReport, Context, ErrorKind, Grants, Limits};
use serde_json::{Value, json};

use crate::support::{self, dist_all, flowhost, limited, root, run};

/// Calls a plugin of `plugins/dist` (e.g. `js/js-stamp`), built by build-all.sh.
/// Each component is compiled once per test run, even when tests race for it.
async fn call(name: &str, input: &str, config: &str, options: CallOptions) -> CallReport {
    dist_all();
    let p = support::plugin_once(name).await;
    let ctx = Context {
        config: config.to_string(),
        ..Context::direct(p.name())
    };
    support::host().call_with(&p, &ctx, input, &options).await
}

fn quick(timeout_ms: u64, fuel: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        fuel: Some(fuel),
        ..Limits::default()
    }
}

fn ok(r: CallReport) -> Value {
    let out = r.result.unwrap_or_else(|e| panic!("call failed: {e}"));
    serde_json::from_str(&out).expect("output is JSON")
}

fn err(r: CallReport) -> CallError {
    r.result.expect_err("the call should fail")
}

// --- the examples -------------------------------------------------------------

#[tokio::test]
async fn js_stamp_transforms_json_and_maps_typed_errors() {
    let out = ok(call(
        "js/js-stamp",
        r#"{"a":1,"path":["x"]}"#,
        "{}",
        CallOptions::default(),
    )
    .await);
    assert_eq!(out, json!({"a": 1, "path": ["x", "js"], "js": {"keys": 2}}));

    let e = err(call("js/js-stamp", "[1,2]", "{}", CallOptions::default()).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(
        e.message().contains("expected a JSON object, got an array"),
        "{e}"
    );

    let e = err(call(
        "js/js-stamp",
        "{}",
        r#"{"fail":"transient"}"#,
        CallOptions::default(),
    )
    .await);
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    let e = err(call(
        "js/js-stamp",
        "{}",
        r#"{"fail":"permanent"}"#,
        CallOptions::default(),
    )
    .await);
    assert_eq!(e.kind(), ErrorKind::Permanent, "{e}");
}

#[tokio::test]
async fn py_stamp_transforms_json_and_maps_typed_errors() {
    let out = ok(call(
        "python/py-stamp",
        r#"{"a":1}"#,
        "{}",
        CallOptions::default(),
    )
    .await);
    assert_eq!(
        out,
        json!({"a": 1, "path": ["python"], "python": {"keys": 1}})
    );

    let e = err(call("python/py-stamp", "\"text\"", "{}", CallOptions::default()).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains("got str"), "{e}");

    let e = err(call(
        "python/py-stamp",
        "{}",
        r#"{"fail":"transient"}"#,
        CallOptions::default(),
    )
    .await);
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    let e = err(call("python/py-stamp", "{}", "not json", CallOptions::default()).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.message().contains("config is not valid JSON"), "{e}");
}

#[tokio::test]
async fn c_stamp_appends_a_field_and_rejects_non_objects() {
    let out = ok(call(
        "c/c-stamp",
        r#"{"a": [1, 2]}"#,
        "{}",
        CallOptions::default(),
    )
    .await);
    assert_eq!(out, json!({"a": [1, 2], "c": {"bytes": 13}}));
    let out = ok(call("c/c-stamp", " {} ", "{}", CallOptions::default()).await);
    assert_eq!(out, json!({"c": {"bytes": 4}}));
    let e = err(call("c/c-stamp", "[]", "{}", CallOptions::default()).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

/// About 250 KB in and out of every language's echo (a Go build crashed at 62 KB).
#[tokio::test]
async fn echo_steps_round_trip_large_documents() {
    let items: Vec<Value> = (0..4096)
        .map(|i| json!({"i": i, "s": "x".repeat(40)}))
        .collect();
    let doc = json!({ "items": items });
    let text = doc.to_string();
    assert!(text.len() > 200_000);
    for name in ["testing/echo", "js/js-echo", "python/py-echo", "c/c-echo"] {
        let out = ok(call(name, &text, "{}", CallOptions::default()).await);
        assert_eq!(out, doc, "{name}");
    }
}

#[tokio::test]
async fn describe_reports_each_language_step() {
    dist_all();
    for (name, expect) in [
        ("js/js-stamp", "js-stamp"),
        ("python/py-stamp", "py-stamp"),
        ("c/c-stamp", "c-stamp"),
    ] {
        let p = support::plugin_once(name).await;
        let meta = support::host().describe(&p).await.expect("describe");
        assert_eq!(meta.name, expect);
        assert_eq!(meta.version, "0.1.0");
    }
}

// --- hostile steps in JavaScript and Python -----------------------------------

#[tokio::test]
async fn js_and_py_busy_loops_run_out_of_fuel() {
    for name in ["js/js-busy-loop", "python/py-busy-loop"] {
        let r = call(name, "{}", "{}", limited(quick(30_000, 200_000_000))).await;
        assert!(
            r.fuel_used >= 200_000_000,
            "{name}: fuel used {}",
            r.fuel_used
        );
        let e = err(r);
        assert_eq!(e.kind(), ErrorKind::Fuel, "{name}: {e}");
    }
}

#[tokio::test]
async fn js_and_py_busy_loops_are_stopped_by_their_deadline() {
    for name in ["js/js-busy-loop", "python/py-busy-loop"] {
        support::plugin_once(name).await; // compile outside the timed part
        let started = Instant::now();
        let e = err(call(name, "{}", "{}", limited(quick(300, u64::MAX / 2))).await);
        assert_eq!(e.kind(), ErrorKind::Deadline, "{name}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn js_and_py_memory_hogs_hit_the_memory_cap() {
    for (name, cap) in [
        ("js/js-memory-hog", 32u64 << 20),
        ("python/py-memory-hog", 96 << 20),
    ] {
        let limits = Limits {
            max_memory: cap,
            ..Limits::default()
        };
        let e = err(call(name, "{}", "{}", limited(limits)).await);
        assert_eq!(e.kind(), ErrorKind::Memory, "{name}: {e}");
    }
}

#[tokio::test]
async fn a_typed_throw_is_a_step_error_and_any_other_exception_a_trap() {
    for (name, typed_message, untyped_message) in [
        ("js/js-throw", "hostile typed throw", "hostile throw"),
        (
            "python/py-raise",
            "hostile typed raise",
            "KeyError: 'hostile raise'",
        ),
    ] {
        let e = err(call(name, r#"{"typed":true}"#, "{}", CallOptions::default()).await);
        assert_eq!(e.kind(), ErrorKind::Permanent, "{name}: {e}");
        assert_eq!(e.message(), typed_message, "{name}");

        let e = err(call(name, "{}", "{}", CallOptions::default()).await);
        assert_eq!(e.kind(), ErrorKind::Trap, "{name}: {e}");
        assert!(e.message().contains(untyped_message), "{name}: {e}");
    }
}

#[tokio::test]
async fn the_host_lives_on_after_hostile_steps_in_other_languages() {
    let e = err(call(
        "js/js-busy-loop",
        "{}",
        "{}",
        limited(quick(10_000, 50_000_000)),
    )
    .await);
    assert_eq!(e.kind(), ErrorKind::Fuel);
    let out = ok(call("js/js-stamp", "{}", "{}", CallOptions::default()).await);
    assert_eq!(out["path"], json!(["js"]));
}

// --- sql and kv from every language -------------------------------------------

/// The steps that run the sql and kv calls their input lists
/// (`{"ops": [...]}` -> `{"results": [{"ok": ...} | {"error": {kind, message}}]}`).
const DATA_STEPS: [&str; 2] = ["js/js-data", "python/py-data"];

/// One of each call the helpers make.
fn every_op() -> Value {
    json!([
        {"op": "query", "db": "orders", "sql": "select ?1 as n", "params": [1, 2.5, "x", null, true, {"blob": [1]}]},
        {"op": "execute", "db": "orders", "sql": "delete from orders"},
        {"op": "batch", "db": "orders", "statements": [["delete from orders where id = ?1", [1]]]},
        {"op": "transaction", "db": "orders", "statements": [], "then": "commit"},
        {"op": "get", "ns": "counters", "key": "k"},
        {"op": "set", "ns": "counters", "key": "k", "value": "v", "ttl_ms": 1000},
        {"op": "delete", "ns": "counters", "key": "k"},
        {"op": "increment", "ns": "counters", "key": "k", "delta": 2},
        {"op": "cas", "ns": "counters", "key": "k", "expected": null, "value": "v"},
    ])
}

/// Checks one step's results against `expect`: `{"ok": V}` exactly, an
/// error by its kind alone (`{"error": "denied"}`), as its message is the host's.
fn check_results(step: &str, out: &Value, expect: &[Value]) {
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), expect.len(), "{step}: {out}");
    for (i, (got, want)) in results.iter().zip(expect).enumerate() {
        match want.get("error").and_then(Value::as_str) {
            Some(kind) => {
                assert_eq!(got["error"]["kind"], kind, "{step} op {i}: {got}");
                let message = got["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{step} op {i}: {got}");
            }
            None => assert_eq!(got, want, "{step} op {i}"),
        }
    }
}

/// Each case: what it shows, the call's grants, the ops, each op's outcome.
fn denied_cases() -> Vec<(&'static str, Grants, Value, Vec<Value>)> {
    let denied = json!({"error": "denied"});
    vec![
        (
            "no grant: every call is a typed denial, not a trap",
            Grants::default(),
            every_op(),
            vec![denied; 9],
        ),
        (
            "a parameter the helper cannot bind is refused before the host",
            Grants::default(),
            json!([
                {"op": "query", "db": "orders", "sql": "select ?1", "params": [{"a": 1}]},
                {"op": "set", "ns": "counters", "key": "k", "value": 5},
            ]),
            vec![json!({"error": "invalid"}), json!({"error": "invalid"})],
        ),
    ]
}

#[tokio::test]
async fn js_and_python_sql_and_kv_calls_are_denied_as_typed_errors_without_a_grant() {
    for (what, grants, ops, expect) in denied_cases() {
        for step in DATA_STEPS {
            let options = CallOptions {
                grants: grants.clone(),
                ..CallOptions::default()
            };
            let input = json!({ "ops": ops }).to_string();
            let out = ok(call(step, &input, "{}", options).await);
            check_results(&format!("{step}: {what}"), &out, &expect);
        }
    }
}

#[tokio::test]
async fn an_uncaught_sql_or_kv_error_fails_the_step_with_its_kind_and_message() {
    for step in DATA_STEPS {
        for (op, prefix) in [
            (
                json!({"op": "query", "db": "orders", "sql": "select 1"}),
                "sql denied: ",
            ),
            (
                json!({"op": "increment", "ns": "counters", "key": "k"}),
                "kv denied: ",
            ),
            (
                json!({"op": "increment", "ns": "counters", "key": "k", "delta": 0.5}),
                "kv invalid: delta",
            ),
        ] {
            let mut op = op;
            op["uncaught"] = json!(true);
            let input = json!({ "ops": [op] }).to_string();
            let e = err(call(step, &input, "{}", CallOptions::default()).await);
            assert_eq!(e.kind(), ErrorKind::Permanent, "{step}: {e}");
            assert!(e.message().starts_with(prefix), "{step}: {e}");
        }
    }
}

#[tokio::test]
async fn a_c_step_gets_typed_sql_and_kv_errors_without_a_grant() {
    let out = ok(call("c/c-data", r#"{"id": 7}"#, "{}", CallOptions::default()).await);
    for part in ["sql", "kv"] {
        assert_eq!(out[part]["error"]["kind"], "denied", "{out}");
        let message = out[part]["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{out}");
    }
    let e = err(call("c/c-data", r#"{"id": "x"}"#, "{}", CallOptions::default()).await);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

/// What each language's data step answers with `orders` (a fresh SQLite
/// file) and `counters` granted, run as one flow: JavaScript makes the table
/// (one transaction rolled back, one committed, a batch that fails whole),
/// Python reads and writes it, C looks an order up; kv is shared by all.
#[test]
fn every_language_reaches_a_granted_database_and_kv() {
    let dist = dist_all();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowhost.toml"),
        "[databases.orders]\nurl = \"sqlite:orders.db\"\n",
    )
    .unwrap();
    let grant = "    allow: {sql: [orders], kv: [counters]}\n";
    let flow = format!(
        "flow: langs-data\nsteps:\n  - id: js\n    plugin: js-data\n    input: {{ops: \"${{input.js}}\"}}\n{grant}  \
         - id: py\n    plugin: py-data\n    input: {{ops: \"${{input.py}}\"}}\n{grant}  \
         - id: c\n    plugin: c-data\n    input: {{id: 1}}\n{grant}  \
         - id: all\n    plugin: echo\n    input: {{js: \"${{steps.js.output.results}}\", \
         py: \"${{steps.py.output.results}}\", c: \"${{steps.c.output}}\"}}\n"
    );
    std::fs::write(dir.path().join("flow.yaml"), flow).unwrap();
    let injection = "a'); drop table orders; --";
    let input = json!({
        "js": [
            {"op": "execute", "db": "orders", "sql": "create table orders (id integer primary key, note text, total real)"},
            {"op": "transaction", "db": "orders", "then": "rollback",
             "statements": [["insert into orders (id, note) values (?1, ?2)", [9, "gone"]]],
             "query": ["select count(*) as n from orders", []]},
            {"op": "transaction", "db": "orders", "then": "commit",
             "statements": [["insert into orders (id, note, total) values (?1, ?2, ?3)", [1, injection, 2.5]]]},
            {"op": "batch", "db": "orders", "statements": [
                ["insert into orders (id) values (?1)", [2]],
                ["insert into orders (id) values (?1)", [1]]]},
            {"op": "query", "db": "orders", "sql": "select length(?1) as n", "params": [{"blob": [1, 2, 3]}]},
            {"op": "increment", "ns": "counters", "key": "hits", "delta": 2},
        ],
        "py": [
            {"op": "query", "db": "orders", "sql": "select id, note, total from orders order by id"},
            {"op": "execute", "db": "orders", "sql": "update orders set total = total + ?1", "params": [1]},
            {"op": "increment", "ns": "counters", "key": "hits"},
            {"op": "set", "ns": "counters", "key": "k", "value": "v"},
            {"op": "cas", "ns": "counters", "key": "k", "expected": "v", "value": "w"},
            {"op": "cas", "ns": "counters", "key": "k", "expected": null, "value": "x"},
            {"op": "get", "ns": "counters", "key": "k"},
            {"op": "delete", "ns": "counters", "key": "k"},
            {"op": "get", "ns": "counters", "key": "k"},
        ],
    });
    let (code, stdout, stderr) = run(flowhost()
        .current_dir(dir.path())
        .args(["run", "flow.yaml", "--config", "flowhost.toml", "--plugins"])
        .arg(dist)
        .args(["--input", &input.to_string()]));
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).expect("JSON output");
    let rejected = json!({"error": "rejected"});
    check_results(
        "js-data",
        &json!({"results": out["js"]}),
        &[
            json!({"ok": 0}),
            json!({"ok": {"counts": [1], "rows": [{"n": 1}]}}),
            json!({"ok": {"counts": [1], "rows": null}}),
            rejected,
            json!({"ok": [{"n": 3}]}),
            json!({"ok": 2}),
        ],
    );
    check_results(
        "py-data",
        &json!({"results": out["py"]}),
        &[
            json!({"ok": [{"id": 1, "note": injection, "total": 2.5}]}),
            json!({"ok": 1}),
            json!({"ok": 3}),
            json!({"ok": null}),
            json!({"ok": true}),
            json!({"ok": false}),
            json!({"ok": "w"}),
            json!({"ok": true}),
            json!({"ok": null}),
        ],
    );
    assert_eq!(
        out["c"],
        json!({"sql": {"ok": [{"id": 1, "note": injection, "total": 3.5}]}, "kv": {"ok": 1}})
    );
}

// --- one flow, four languages (the CLI) ---------------------------------------

#[test]
fn polyglot_flow_chains_rust_js_python_and_c() {
    let dist = dist_all();
    let flow = root().join("flows/examples/polyglot.yaml");
    let input = root().join("flows/data/polyglot.input.json");
    let (code, stdout, stderr) = run(flowhost()
        .arg("run")
        .arg(&flow)
        .arg("--plugins")
        .arg(dist)
        .arg("--input")
        .arg(format!("@{}", input.display())));
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(
        out,
        json!({
            "order": {"id": "o-1", "customer": "c-7", "items": [{"sku": "A", "qty": 2, "price": 4.5}],
                      "item_count": 2, "tier": "gold"},
            "path": ["rust", "js", "python"],
            "js": {"keys": 2},
            "python": {"keys": 3},
            "c": {"bytes": 201},
        }),
        "{stdout}"
    );
    // Each language logged through the host.
    for line in [
        "stamping an object of 2 keys",
        "stamping an object of 3 keys",
        "stamped 201 bytes",
    ] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
}

// --- flowhost new -------------------------------------------------------------

#[test]
fn new_refuses_bad_names_and_non_empty_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(flowhost()
        .args(["new", "--lang", "js", "Bad_Name"])
        .arg(tmp.path().join("x")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad step name"), "{stderr}");

    std::fs::write(tmp.path().join("taken"), "").unwrap();
    let (code, _, stderr) = run(flowhost()
        .args(["new", "--lang", "c", "ok"])
        .arg(tmp.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");

    let (code, _, stderr) = run(flowhost()
        .args(["new", "--lang", "rust", "ok", "--sdk-path"])
        .arg(tmp.path())
        .arg(tmp.path().join("y")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not the flowhost-sdk crate"), "{stderr}");
}
