//! Steps in JavaScript, Python and C beside Rust: the examples, one flow
//! through all four languages, and hostile steps in JavaScript and Python.
//!
//! JavaScript and Python components are megabytes and take seconds to
//! compile: library tests share them through `support::plugin_once`, and only a
//! few tests run them in a `flowhost` subprocess.

use std::time::{Duration, Instant};

use flowhost::{CallError, CallOptions, CallReport, Context, ErrorKind, Limits};
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
