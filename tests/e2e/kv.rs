//! Key-value state from steps: the `kv` test plugin runs the operations its
//! input lists and returns each one's answer, so these tests see what a step
//! sees. Grants, caps, atomic increments from concurrent steps, and state
//! that survives a server restart (SQLite) and is shared by a fleet
//! (PostgreSQL).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::fleet::Fleet;
use crate::support::{flowhost, http, parse, run_flow_with};
use flowhost::kv::{KvStore, MemoryKv};
use flowhost::{Executor, RunStatus, Services};

/// A flow whose one step `kv` is granted `namespaces`.
fn flow(namespaces: &str) -> String {
    format!("flow: state\nsteps:\n  - id: kv\n    plugin: kv\n    allow: {{kv: [{namespaces}]}}\n")
}

fn executor(kv: Arc<dyn KvStore>) -> Executor {
    Executor::with_services(crate::support::host().clone(), Services::new().kv(kv))
}

/// What each of `ops` answered, run by one step granted `namespaces`.
async fn answers(exec: &Executor, namespaces: &str, ops: Value) -> Vec<Value> {
    let record = run_flow_with(exec, &flow(namespaces), json!({ "ops": ops })).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    let output: Value = serde_json::from_str(record.output.as_ref().unwrap().get()).unwrap();
    output["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_granted_step_keeps_state_and_everything_else_is_a_typed_error_it_sees() {
    let exec = executor(Arc::new(MemoryKv::new()));
    let results = answers(
        &exec,
        "counters, cache",
        json!([
            {"op": "incr", "ns": "counters", "key": "hits", "delta": 2},
            {"op": "incr", "ns": "counters", "key": "hits", "delta": 3},
            {"op": "set", "ns": "cache", "key": "user:1", "value": "{\"name\":\"ada\"}", "ttl_ms": 60000},
            {"op": "get", "ns": "cache", "key": "user:1"},
            {"op": "cas", "ns": "cache", "key": "lock", "expected": null, "value": "me"},
            {"op": "cas", "ns": "cache", "key": "lock", "expected": null, "value": "you"},
            {"op": "delete", "ns": "cache", "key": "lock"},
            {"op": "get", "ns": "secrets", "key": "k"},
            {"op": "get", "ns": "counters", "key": ""},
            {"op": "get", "ns": "counters", "key_len": 1025},
            {"op": "set", "ns": "counters", "key": "big", "value_len": 1_048_577},
            {"op": "set", "ns": "counters", "key": "t", "value": "v", "ttl_ms": 0},
            {"op": "set", "ns": "counters", "key": "t", "value": "v", "ttl_ms": 315_360_000_001u64},
            {"op": "incr", "ns": "cache", "key": "user:1", "delta": 1},
        ]),
    )
    .await;
    let ok = |i: usize| results[i]["ok"].clone();
    assert_eq!(ok(0), json!(2));
    assert_eq!(ok(1), json!(5));
    assert_eq!(ok(3), json!("{\"name\":\"ada\"}"));
    assert_eq!(
        (ok(4), ok(5), ok(6)),
        (json!(true), json!(false), json!(true))
    );
    let error = |i: usize| {
        let e = &results[i]["error"];
        (
            e["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("#{i}: {}", results[i]))
                .to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        error(7),
        (
            "denied".into(),
            "key-value namespace `secrets` is not granted to step `kv` \
             (grant it with `allow: {kv: [secrets]}`)"
                .into()
        )
    );
    for (i, says) in [
        (8, "namespace `counters`: the key is empty"),
        (
            9,
            "namespace `counters`: the key is 1025 bytes, over the 1024-byte cap",
        ),
        (
            10,
            "namespace `counters`: the value is 1048577 bytes, over the 1048576-byte cap",
        ),
        (11, "namespace `counters`: ttl-ms 0 is out of range"),
        (
            12,
            "namespace `counters`: ttl-ms 315360000001 is out of range",
        ),
        (
            13,
            "namespace `cache`: the value is not an integer, so it cannot be incremented",
        ),
    ] {
        let (kind, message) = error(i);
        assert_eq!(kind, "invalid", "#{i}: {message}");
        assert!(message.starts_with(says), "#{i}: {message}");
    }
}

#[tokio::test]
async fn without_a_grant_every_operation_is_denied() {
    let exec = executor(Arc::new(MemoryKv::new()));
    let yaml = "flow: bare\nsteps:\n  - id: nosy\n    plugin: kv\n";
    let record = run_flow_with(
        &exec,
        yaml,
        json!({"ops": [{"op": "incr", "ns": "counters", "key": "k", "delta": 1}]}),
    )
    .await;
    let output: Value = serde_json::from_str(record.output.as_ref().unwrap().get()).unwrap();
    assert_eq!(output["results"][0]["error"]["kind"], "denied", "{output}");
    assert!(
        output["results"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not granted to step `nosy`"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_steps_increment_to_exactly_64_in_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = flowhost::store::sqlite::SqliteStore::open(&dir.path().join("runs.db"))
        .await
        .unwrap();
    use flowhost::store::Store;
    let exec = executor(store.kv());
    let yaml = "flow: many\nsteps:\n  - id: each\n    for_each: \"${input.items}\"\n    \
                max_concurrency: 64\n    steps:\n      - id: bump\n        plugin: kv\n        \
                allow: {kv: [counters]}\n";
    let item = json!({"ops": [{"op": "incr", "ns": "counters", "key": "hits", "delta": 1}]});
    let record = run_flow_with(&exec, yaml, json!({ "items": vec![item; 64] })).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    let output: Value = serde_json::from_str(record.output.as_ref().unwrap().get()).unwrap();
    let sums: BTreeSet<i64> = output
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o["results"][0]["ok"]
                .as_i64()
                .unwrap_or_else(|| panic!("{o}"))
        })
        .collect();
    assert_eq!(sums, (1..=64).collect(), "each step saw its own sum");
    assert_eq!(
        store.kv().get("counters", "hits").await.unwrap().as_deref(),
        Some("64")
    );
}

#[test]
fn a_namespace_name_outside_the_charset_is_a_flow_file_error_at_its_line() {
    let yaml = "flow: bad\nsteps:\n  - id: kv\n    plugin: kv\n    allow:\n      kv:\n        - ok_name\n        - \"a.b\"\n";
    let errors = flowhost::flow::parse_flow(Path::new("bad.yaml"), yaml, None).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("bad.yaml:8:11: ")
            && text[0].contains("key-value namespace `a.b` has '.'"),
        "{text:?}"
    );
    // A name that passes is accepted as is.
    parse(&flow("ok_name, with-dash"));
}

/// A served folder with the `kv` plugin and a flow `count` that increments
/// `counters/hits`.
fn served() -> tempfile::TempDir {
    let dir = crate::support::served_folder(&["testing/kv"]);
    std::fs::write(dir.path().join("flows/count.yaml"), flow("counters")).unwrap();
    dir
}

const INCREMENT: &str = r#"{"ops": [{"op": "incr", "ns": "counters", "key": "hits", "delta": 1}]}"#;

/// Runs `count` on the server at `addr` and returns what the increment gave.
async fn count(addr: std::net::SocketAddr) -> Value {
    let r = http("POST", addr, "/flows/state/runs", Some(INCREMENT)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    answer["output"]["results"][0]["ok"].clone()
}

#[tokio::test]
async fn state_in_a_sqlite_store_survives_a_server_restart() {
    let dir = served();
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("runs.db").display());
    let serve = || {
        crate::support::serve(
            flowhost()
                .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
                .arg("--plugins")
                .arg(d.join("plugins"))
                .arg("--flows")
                .arg(d.join("flows"))
                .env("FLOWHOST_LOG", "warn")
                .stdout(Stdio::null()),
        )
    };
    let (mut first, addr, _lines) = serve();
    assert_eq!(count(addr).await, json!(1));
    // SIGKILL: nothing is flushed at exit; the increment was committed
    // before the step had its answer.
    first.kill().unwrap();
    first.wait().unwrap();
    let (_second, addr, _lines) = serve();
    assert_eq!(count(addr).await, json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_state() {
    let mut fleet = Fleet::new(&["testing/kv"]);
    fleet.flow("count", &flow("counters"));
    let servers = fleet.serve_n(2);
    assert_eq!(count(servers[0].addr).await, json!(1));
    assert_eq!(count(servers[1].addr).await, json!(2));
    assert_eq!(count(servers[0].addr).await, json!(3));
}

#[test]
fn flowhost_run_keeps_state_in_its_store_and_only_for_the_run_without_one() {
    let dir = served();
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("runs.db").display());
    let run = |with_store: bool| {
        let mut cmd = flowhost();
        cmd.arg("run")
            .arg(d.join("flows/count.yaml"))
            .arg("--plugins")
            .arg(d.join("plugins"))
            .args(["--input", INCREMENT]);
        if with_store {
            cmd.args(["--store", &store]);
        }
        let (code, out, err) = crate::support::run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        let output: Value = serde_json::from_str(&out).unwrap();
        output["results"][0]["ok"].clone()
    };
    assert_eq!(run(true), json!(1));
    assert_eq!(run(true), json!(2));
    assert_eq!(run(false), json!(1), "memory: nothing kept between runs");
    assert_eq!(run(false), json!(1));
}
