//! Recorded runs guard a plugin swap: `flowhost replay` on runs recorded in
//! a store, and the replay gate of `flowhost serve`. The changed plugin is
//! `testing/shout` under the name `echo`: it answers as `echo` does, except
//! that it upper-cases a `name` field.

use std::path::Path;
use std::time::Duration;

use flowhost::server::{Server, ServerConfig};
use serde_json::{Value, json};

use crate::support::{cached_host, flowhost, http, poll_until, run, wasm, write_atomic};

/// A flow calling `echo` three times: plainly, with a grant, and with a
/// grant but marked safe to replay.
const FLOW: &str = "flow: greet
steps:
  - id: say
    plugin: echo
  - id: guarded
    plugin: echo
    allow: {env: [HOME]}
  - id: safe
    plugin: echo
    allow: {env: [HOME]}
    replay: safe
";

/// Records a run of `flow.yaml` per input in the store `s.db` under `dir`.
fn record(dir: &Path, inputs: &[&str]) {
    for input in inputs {
        let (code, _, err) = run(flowhost()
            .args([
                "run",
                "flow.yaml",
                "--plugins",
                "plugins",
                "--store",
                "sqlite:s.db",
            ])
            .args(["--input", input])
            .current_dir(dir));
        assert_eq!(code, 0, "{err}");
    }
}

/// A folder with `echo` in `plugins/`, the changed one as `shout/echo.wasm`,
/// `fail` as `fail/echo.wasm`, and the flow.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (sub, plugin) in [
        ("plugins", "testing/echo"),
        ("shout", "testing/shout"),
        ("fail", "testing/fail"),
    ] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::copy(wasm(plugin), dir.path().join(sub).join("echo.wasm")).unwrap();
    }
    std::fs::write(dir.path().join("flow.yaml"), FLOW).unwrap();
    dir
}

fn replay(dir: &Path, plugin: &str, more: &[&str]) -> (i32, String, String) {
    run(flowhost()
        .args(["replay", plugin, "--store", "sqlite:s.db"])
        .args(more)
        .current_dir(dir))
}

#[test]
fn a_changed_output_is_reported_with_its_diff() {
    let dir = folder();
    record(dir.path(), &[r#"{"name": "ada"}"#, r#"{"n": 1}"#]);

    let (code, out, err) = replay(dir.path(), "shout/echo.wasm", &[]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Newest run first: `{"n": 1}` answers the same, `{"name": "ada"}` not.
    let same = lines
        .iter()
        .filter(|l| l.ends_with("step say: same"))
        .count();
    assert_eq!(same, 1, "{out}");
    let at = lines
        .iter()
        .position(|l| l.ends_with("step say: different"))
        .unwrap_or_else(|| panic!("no difference reported:\n{out}"));
    assert_eq!(lines[at + 1], r#"  $.name: "ada" -> "ADA""#, "{out}");
    // A step with grants is skipped unless marked `replay: safe`.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("step guarded: skipped: the step has grants"))
            .count(),
        2,
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("step safe: different")),
        "{out}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            "4 calls replayed from 2 runs: 2 same, 2 different, 0 now failing, 0 now succeeding; 2 skipped (grants), 0 not replayable"
        ),
        "{out}"
    );
    assert!(
        err.contains("2 of 4 replayed calls of `echo` changed"),
        "{err}"
    );

    // As JSON, narrowed to one step.
    let (code, out, err) = replay(
        dir.path(),
        "shout/echo.wasm",
        &["--json", "--step", "say", "--last", "2"],
    );
    assert_eq!(code, 1, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["plugin"], "echo");
    assert_eq!(report["summary"]["replayed"], 2, "{report}");
    let different = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["verdict"] == "different")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(different["step"], "say");
    assert_eq!(
        different["differences"],
        json!([{"path": "$.name", "recorded": "ada", "replayed": "ADA"}])
    );

    // A version that fails now.
    let (code, out, _) = replay(dir.path(), "fail/echo.wasm", &["--step", "say"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("step say: now failing: permanent: requested failure"),
        "{out}"
    );
}

#[test]
fn a_compatible_version_answers_the_same() {
    let dir = folder();
    record(
        dir.path(),
        &[r#"{"n": 1}"#, r#"{"list": [1, {"a": null}]}"#],
    );
    // `shout` answers as `echo` does on inputs without a `name`.
    let (code, out, err) = replay(dir.path(), "shout/echo.wasm", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with(
            "4 calls replayed from 2 runs: 4 same, 0 different, 0 now failing, 0 now succeeding; 2 skipped (grants), 0 not replayable\n"
        ),
        "{out}"
    );

    // Another flow's runs only: none.
    let (code, out, _) = replay(dir.path(), "shout/echo.wasm", &["--flow", "other"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("0 calls replayed from 0 runs: 0 same"),
        "{out}"
    );

    // Usage errors: no such store, not a component.
    let (code, _, err) = run(flowhost()
        .args(["replay", "shout/echo.wasm", "--store", "sqlite:none.db"])
        .current_dir(dir.path()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sqlite:none.db: no such store"), "{err}");
    let (code, _, err) = replay(dir.path(), "flow.yaml", &[]);
    assert_eq!(code, 2, "{err}");
}

/// The flow the gate test serves: one `echo` step.
const GREET: &str = "flow: greet\nsteps:\n  - id: say\n    plugin: echo\n";

/// Runs `greet` on `input` through the server; returns its output.
async fn greet(addr: std::net::SocketAddr, input: &str) -> Value {
    let r = http("POST", addr, "/flows/greet/runs", Some(input)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "succeeded", "{body}");
    body["output"].clone()
}

/// `echo` as `GET /plugins` lists it.
async fn echo_status(addr: std::net::SocketAddr) -> Value {
    let r = http("GET", addr, "/plugins", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = r.json()["plugins"].clone();
    let echo = all.as_array().unwrap().iter().find(|p| p["name"] == "echo");
    echo.cloned().unwrap_or_else(|| panic!("{all}"))
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_gate_accepts_a_compatible_swap_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (plugins, flows) = (dir.path().join("plugins"), dir.path().join("flows"));
    std::fs::create_dir(&plugins).unwrap();
    std::fs::create_dir(&flows).unwrap();
    let echo = std::fs::read(wasm("testing/echo")).unwrap();
    let shout = std::fs::read(wasm("testing/shout")).unwrap();
    std::fs::write(plugins.join("echo.wasm"), &echo).unwrap();
    std::fs::write(flows.join("greet.yaml"), GREET).unwrap();
    let mut config =
        ServerConfig::from_toml("[replay_gate]\nruns = 10\nmax_changed = 0.1\n").unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.store = Some(flowhost::store::StoreUrl::Sqlite(dir.path().join("s.db")));
    let host = cached_host(&dir.path().join("cache"));
    let server = Server::start(host, &plugins, &flows, config)
        .await
        .expect("server starts");
    let addr = server.addr();

    // Recorded calls that `shout` answers as `echo` does: the swap passes.
    for n in 1..=2 {
        assert_eq!(
            greet(addr, &format!(r#"{{"n": {n}}}"#)).await,
            json!({"n": n})
        );
    }
    write_atomic(&plugins.join("echo.wasm"), &shout);
    let wait = Duration::from_secs(20);
    poll_until(wait, "the compatible version serves", || async {
        echo_status(addr).await["hash"] == sha256(&shout).as_str()
    })
    .await;
    assert_eq!(echo_status(addr).await["error"], Value::Null);
    assert_eq!(
        greet(addr, r#"{"name": "ada"}"#).await,
        json!({"name": "ADA"})
    );

    // Back to `echo`: the call recorded from `shout` now differs (1 of 3,
    // past 10%), so the swap is refused and `shout` keeps answering.
    write_atomic(&plugins.join("echo.wasm"), &echo);
    poll_until(wait, "the swap is refused", || async {
        !echo_status(addr).await["error"].is_null()
    })
    .await;
    let status = echo_status(addr).await;
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("the replay gate refused it: 1 of 3 recorded calls differ or fail (33%, more than the 10% allowed)")
            && error.contains(r#"step say: different: $.name: "ADA" -> "ada""#),
        "{error}"
    );
    assert_eq!(status["hash"], sha256(&shout).as_str());
    assert_eq!(
        greet(addr, r#"{"name": "bo"}"#).await,
        json!({"name": "BO"})
    );
    server.shutdown().await;
}
