//! The step contract grows compatibly: a component built against
//! `flowhost:step@0.1.0` (`testing/legacy-step`, built from a frozen copy of
//! that WIT without the SDK) loads and runs beside ones built against the
//! current contract (0.1.1 added `execution-key`, 0.1.2 `sql` and `kv`),
//! and so does `testing/legacy-key`, built from a frozen copy of 0.1.1. The `key` plugin returns the key it
//! sees: `<run id>/<step path>`, the same on every attempt, for a fallback,
//! and for a step that runs again after a crash.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flowhost::executor::RunJournal;
use flowhost::store::memory::MemoryStore;
use flowhost::store::{NewRun, Store};
use flowhost::{ErrorKind, RunOptions, RunRecord, RunStatus};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{
    dist_all, executor, flowhost, parse, plugin_set, poll_until, run, step, wasm,
};

/// The list `field` (`imports`, `capabilities`) of `flowhost inspect --json` for the plugin `name`.
fn inspected(name: &str, field: &str) -> Vec<String> {
    let (code, out, err) =
        run(flowhost().args(["inspect", wasm(name).to_str().unwrap(), "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field}: {out}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// The imports `flowhost inspect --json` lists for the plugin `name`.
fn imports(name: &str) -> Vec<String> {
    inspected(name, "imports")
}

/// Runs `yaml` on `input` as run `run_id`; the run must succeed.
async fn run_as(run_id: &str, yaml: &str, input: Value) -> (RunRecord, Value) {
    let flow = parse(yaml);
    let plugins = plugin_set(&flow).await;
    let options = RunOptions {
        run_id: Some(run_id.to_string()),
        ..RunOptions::default()
    };
    let record = executor().run(&flow, &plugins, input, options).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let out = record.output_value().unwrap();
    (record, out)
}

#[test]
fn each_step_imports_the_contract_it_was_built_against() {
    let legacy = imports("testing/legacy-step");
    assert!(
        legacy.contains(&"flowhost:step/host@0.1.0".to_string())
            && legacy.contains(&"flowhost:step/types@0.1.0".to_string()),
        "{legacy:?}"
    );
    let frozen = imports("testing/legacy-key");
    assert!(
        frozen.contains(&"flowhost:step/host@0.1.1".to_string()),
        "{frozen:?}"
    );
    let key = imports("testing/key");
    assert!(
        key.contains(&"flowhost:step/host@0.1.2".to_string()),
        "{key:?}"
    );
}

/// Every contract version in one flow: 0.1.0, 0.1.1 (its `execution-key`
/// answered by the 0.1.2 host) and 0.1.2.
#[tokio::test]
async fn steps_of_every_contract_version_run_in_one_flow() {
    let (_, out) = run_as(
        "r-three",
        "flow: three\nsteps:\n  - id: v010\n    plugin: legacy-step\n  \
         - id: v011\n    plugin: legacy-key\n  \
         - id: v012\n    plugin: key\n",
        json!({"n": 1}),
    )
    .await;
    assert_eq!(out, json!({"key": "r-three/v012", "attempt": 1}));
    let (record, _) = run_as(
        "r-three-b",
        "flow: three\nsteps:\n  - id: v010\n    plugin: legacy-step\n  \
         - id: v011\n    plugin: legacy-key\n",
        json!({"n": 1}),
    )
    .await;
    assert_eq!(
        record.output_value().unwrap(),
        json!({"key": "r-three-b/v011", "input": {"n": 1}})
    );
}

#[test]
fn inspect_shows_the_capabilities_each_step_imports() {
    dist_all();
    // Built against 0.1.0: the host interface of its time, nothing of 0.1.2.
    assert_eq!(
        inspected("testing/legacy-step", "capabilities"),
        ["host 0.1.0", "environment", "stdio"]
    );
    let (code, out, err) =
        run(flowhost().args(["inspect", wasm("testing/legacy-step").to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l == "capabilities: host 0.1.0, environment, stdio"),
        "{out}"
    );

    // A Rust step imports what it uses: save-order, the sql interface.
    let rust = inspected("save-order", "capabilities");
    assert!(rust.contains(&"sql 0.1.2".to_string()), "{rust:?}");
    assert!(!rust.iter().any(|c| c.starts_with("wasi:http")), "{rust:?}");

    // A JavaScript step imports the whole 0.1.2 world.
    let js = inspected("js/js-data", "capabilities");
    assert_eq!(js[..3], ["host 0.1.2", "sql 0.1.2", "kv 0.1.2"], "{js:?}");
}

#[tokio::test]
async fn a_0_1_0_step_runs_beside_a_0_1_1_step_in_one_flow() {
    let (record, out) = run_as(
        "r-mixed",
        "flow: mixed\nsteps:\n  - id: old\n    plugin: legacy-step\n  \
         - id: new\n    plugin: key\n  \
         - id: both\n    plugin: echo\n    \
         input: {old: \"${steps.old.output}\", new: \"${steps.new.output}\"}\n",
        json!({"order": 7}),
    )
    .await;
    assert_eq!(
        out,
        json!({"old": {"order": 7}, "new": {"key": "r-mixed/new", "attempt": 1}})
    );
    let old = step(&record, "old");
    // Its `log` import (0.1.0) reaches the host like a 0.1.1 step's.
    let logs: Vec<&str> = old.attempts[0]
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(logs, ["legacy step old (attempt 1)"]);
}

#[test]
fn a_0_1_0_step_is_called_directly_and_a_direct_call_is_keyed_by_the_plugin() {
    let (code, out, err) = run(flowhost().args([
        "call",
        wasm("testing/legacy-step").to_str().unwrap(),
        "--input",
        r#"{"a":1}"#,
    ]));
    assert_eq!((code, out.trim()), (0, r#"{"a":1}"#), "{err}");
    assert!(err.contains("legacy step legacy-step (attempt 1)"), "{err}");

    let (code, out, err) = run(flowhost().args(["call", wasm("testing/key").to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["key"], "key");
}

#[tokio::test]
async fn the_key_is_the_run_and_step_path_for_items_retries_and_fallbacks() {
    let yaml = "flow: keys\nsteps:\n  - id: each\n    for_each: ${input.items}\n    steps:\n      \
                - id: k\n        plugin: key\n  \
                - id: again\n    plugin: key\n    config: {fail_until: 3}\n    \
                retry: {max_attempts: 3, initial_interval: 1ms}\n  \
                - id: saved\n    plugin: fail\n    config: {kind: permanent, message: nope}\n    \
                fallback: {plugin: key}\n  \
                - id: all\n    plugin: echo\n    input: {each: \"${steps.each.output}\", \
                again: \"${steps.again.output}\", saved: \"${steps.saved.output}\"}\n";
    let (record, out) = run_as("r-keys", yaml, json!({"items": [10, 11, 12]})).await;

    let keys: Vec<&Value> = out["each"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["key"])
        .collect();
    assert_eq!(
        keys,
        ["r-keys/each[0].k", "r-keys/each[1].k", "r-keys/each[2].k"]
    );

    // Every attempt of a retried step sees one key.
    assert_eq!(out["again"], json!({"key": "r-keys/again", "attempt": 3}));
    let failed: Vec<(ErrorKind, &str)> = step(&record, "again")
        .attempts
        .iter()
        .filter_map(|a| a.error.as_ref())
        .map(|e| (e.kind, e.message.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (ErrorKind::Transient, "attempt 1 with key r-keys/again"),
            (ErrorKind::Transient, "attempt 2 with key r-keys/again"),
        ]
    );

    // A fallback shares its step's key.
    assert_eq!(out["saved"]["key"], "r-keys/saved");
}

/// The lines of `keys.txt` in `dir`.
fn keys(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("keys.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_step_in_flight_at_a_crash_runs_again_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "flow: pay\nsteps:\n  - id: first\n    plugin: echo\n  - id: charge\n    plugin: key\n    \
         config: {{file: /out/keys.txt, sleep_ms: 1500}}\n    \
         allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n",
        dir.path().display()
    );
    let flow = parse(&yaml);
    let plugins = plugin_set(&flow).await;
    let store = Arc::new(MemoryStore::new(Default::default()));
    let run: NewRun = serde_json::from_value(json!({
        "run_id": "r-pay", "flow": "pay", "flow_version": "", "plugins": {},
        "input": {}, "accepted_at": 0, "idempotency_key": null, "derived_from": null,
    }))
    .unwrap();
    store.accept(vec![run]).await.unwrap();
    store.started("r-pay", SystemTime::now()).await.unwrap();
    let journaled = |entries| RunOptions {
        run_id: Some("r-pay".to_string()),
        journal: Some(Arc::new(RunJournal::new(
            store.clone() as Arc<dyn Store>,
            "r-pay",
            entries,
        ))),
        ..RunOptions::default()
    };

    // First life: stopped while `charge` is in flight (its key is written).
    let cancel = CancellationToken::new();
    let options = RunOptions {
        cancel: Some(cancel.clone()),
        ..journaled(Vec::new())
    };
    let watch = dir.path().to_path_buf();
    let crash = tokio::spawn(async move {
        poll_until(Duration::from_secs(20), "charge in flight", || {
            let n = keys(&watch).len();
            async move { n == 1 }
        })
        .await;
        cancel.cancel();
    });
    let first = executor().run(&flow, &plugins, json!({}), options).await;
    crash.await.unwrap();
    assert_eq!(first.status, RunStatus::Cancelled, "{:?}", first.error);

    // Second life: `first` is replayed, `charge` runs again.
    let left = store.unfinished().await.unwrap().pop().unwrap();
    let paths: Vec<&str> = left.steps.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["first"]);
    let record = executor()
        .run(&flow, &plugins, json!({}), journaled(left.steps))
        .await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    assert_eq!(keys(dir.path()), ["r-pay/charge", "r-pay/charge"]);
    let out = record.output_value().unwrap();
    assert_eq!(out["key"], "r-pay/charge");
}
