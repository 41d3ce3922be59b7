//! Hot reload: a plugins folder as a live registry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flowhost::ErrorKind;
use flowhost::server::{Server, ServerConfig};
use flowhost::{
    Context, Executor, Host, LiveFlows, LivePlugins, ReloadOutcome, RunOptions, RunStatus,
    WatchOptions,
};
use sha2::{Digest, Sha256};

use crate::support::{cached_host, dist_all, http, poll_until, wasm, write_atomic};

const WAIT: Duration = Duration::from_secs(30);
const INPUT: &str = r#"{"x":1}"#;
const ECHO_OUT: &str = r#"{"x":1}"#;
const COUNTER_OUT: &str = r#"{"calls":1}"#;

fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    host: Host,
    echo: Vec<u8>,
    counter: Vec<u8>,
}

/// A plugins folder holding `x.wasm` (echo), and a host with its own cache.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let echo = std::fs::read(wasm("testing/echo")).unwrap();
    let counter = std::fs::read(wasm("testing/counter")).unwrap();
    std::fs::write(dir.join("x.wasm"), &echo).unwrap();
    let host = cached_host(&tmp.path().join("cache"));
    Fixture {
        _tmp: tmp,
        dir,
        host,
        echo,
        counter,
    }
}

async fn open(f: &Fixture) -> LivePlugins {
    LivePlugins::open(&f.host, &f.dir, WatchOptions::default())
        .await
        .expect("open the plugins folder")
}

async fn serving(live: &LivePlugins, name: &str) -> Option<String> {
    live.get(name).map(|p| p.hash().to_string())
}

async fn wait_for_hash(live: &LivePlugins, name: &str, want: &str) {
    poll_until(WAIT, &format!("`{name}` serving {want}"), || async {
        serving(live, name).await.as_deref() == Some(want)
    })
    .await;
}

async fn error_of(live: &LivePlugins, name: &str) -> Option<String> {
    live.statuses()
        .await
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.error)
}

async fn call_x(live: &LivePlugins, host: &Host) -> (String, String) {
    let p = live.get("x").expect("x is serving");
    let out = host
        .call(&p, &Context::direct("x"), INPUT)
        .await
        .expect("call");
    (p.hash().to_string(), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_fails_no_call() {
    let f = fixture();
    let live = open(&f).await;
    let (echo_hash, counter_hash) = (hash(&f.echo), hash(&f.counter));
    assert_eq!(
        serving(&live, "x").await.as_deref(),
        Some(echo_hash.as_str())
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (live, host, stop) = (live.clone(), f.host.clone(), stop.clone());
        let (echo_hash, counter_hash) = (echo_hash.clone(), counter_hash.clone());
        callers.push(tokio::spawn(async move {
            let (mut echo_calls, mut counter_calls) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let p = live.get("x").expect("x is always serving");
                let out = host
                    .call(&p, &Context::direct("x"), INPUT)
                    .await
                    .unwrap_or_else(|e| panic!("a call failed during reloads: {e}"));
                // Every output comes from exactly the version the call started on.
                if p.hash() == echo_hash {
                    assert_eq!(out, ECHO_OUT);
                    echo_calls += 1;
                } else {
                    assert_eq!(p.hash(), counter_hash);
                    assert_eq!(out, COUNTER_OUT);
                    counter_calls += 1;
                }
            }
            (echo_calls, counter_calls)
        }));
    }

    let path = f.dir.join("x.wasm");
    for i in 0..21 {
        let (bytes, want) = if i % 2 == 0 {
            (&f.counter, &counter_hash)
        } else {
            (&f.echo, &echo_hash)
        };
        if i % 3 == 0 {
            std::fs::write(&path, bytes).unwrap(); // in place
        } else {
            write_atomic(&path, bytes); // temp then rename
        }
        wait_for_hash(&live, "x", want).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut echo_calls, mut counter_calls) = (0, 0);
    for c in callers {
        let (e, n) = c.await.expect("no caller panicked");
        echo_calls += e;
        counter_calls += n;
    }
    assert!(
        echo_calls > 0 && counter_calls > 0,
        "both versions served ({echo_calls}, {counter_calls})"
    );

    // The last swap put counter in; every new call gets it.
    let p = live.get("x").unwrap();
    assert_eq!(p.version(), 22, "one version per swap, counted from 1");
    for _ in 0..20 {
        assert_eq!(
            call_x(&live, &f.host).await,
            (counter_hash.clone(), COUNTER_OUT.into())
        );
    }
    assert_eq!(error_of(&live, "x").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_the_versions_it_started_with() {
    let f = fixture();
    std::fs::copy(wasm("testing/sleep"), f.dir.join("sleep.wasm")).unwrap();
    let live = open(&f).await;
    let flow_text = "flow: swap\nsteps:\n  - id: wait\n    plugin: sleep\n    config: {ms: 1500}\n  - id: last\n    plugin: x\n";
    let flow = flowhost::flow::parse_flow(Path::new("swap.yaml"), flow_text, None).unwrap();
    let executor = Executor::new(f.host.clone());

    let snapshot = live.snapshot();
    let run = {
        let (executor, flow) = (executor.clone(), flow.clone());
        tokio::spawn(async move {
            executor
                .run(
                    &flow,
                    &snapshot,
                    serde_json::json!({"x": 1}),
                    RunOptions::default(),
                )
                .await
        })
    };
    // Swap `x` while the run sleeps in its first step.
    tokio::time::sleep(Duration::from_millis(100)).await;
    write_atomic(&f.dir.join("x.wasm"), &f.counter);
    wait_for_hash(&live, "x", &hash(&f.counter)).await;
    let record = run.await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    assert!(
        record.steps[0].duration_ms > 1000.0,
        "the swap happened mid-run"
    );
    assert_eq!(
        record.output_value(),
        Some(serde_json::json!({"x": 1})),
        "the old x ran"
    );
    let last = record.steps.iter().find(|s| s.path == "last").unwrap();
    assert_eq!(last.version.as_deref(), Some(hash(&f.echo).as_str()));

    // A run started after the swap uses the new version.
    let record = executor
        .run(
            &flow,
            &live.snapshot(),
            serde_json::json!({"x": 1}),
            RunOptions::default(),
        )
        .await;
    assert_eq!(record.output_value(), Some(serde_json::json!({"calls": 1})));
    let last = record.steps.iter().find(|s| s.path == "last").unwrap();
    assert_eq!(last.version.as_deref(), Some(hash(&f.counter).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_reported_and_the_last_good_version_serves() {
    let f = fixture();
    let live = open(&f).await;
    let mut events = live.subscribe();
    let path = f.dir.join("x.wasm");
    let echo_hash = hash(&f.echo);

    let broken: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not wasm",
            b"this is not wasm".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "truncated",
            f.counter[..f.counter.len() / 2].to_vec(),
            "invalid component",
        ),
        (
            "wrong world",
            wat::parse_str("(component)").unwrap(),
            "missing export",
        ),
        (
            "core module",
            wat::parse_str("(module)").unwrap(),
            "core WebAssembly module",
        ),
    ];
    for (case, bytes, expected) in broken {
        write_atomic(&path, &bytes);
        poll_until(WAIT, &format!("the {case} error is reported"), || async {
            error_of(&live, "x")
                .await
                .is_some_and(|e| e.contains(expected))
        })
        .await;
        let error = error_of(&live, "x").await.unwrap();
        assert!(
            error.contains("x.wasm"),
            "{case}: the error names the file: {error}"
        );
        // The last good version keeps serving.
        assert_eq!(
            call_x(&live, &f.host).await,
            (echo_hash.clone(), ECHO_OUT.into())
        );
    }
    let mut failed = 0;
    while let Ok(event) = events.try_recv() {
        assert!(
            matches!(event.outcome, ReloadOutcome::Failed { .. }),
            "{event}"
        );
        assert!(event.to_string().contains("keeps serving"), "{event}");
        failed += 1;
    }
    assert_eq!(failed, 4);

    // Fixed: the error clears and the new version serves.
    write_atomic(&path, &f.counter);
    wait_for_hash(&live, "x", &hash(&f.counter)).await;
    assert_eq!(error_of(&live, "x").await, None);
    assert_eq!(live.get("x").unwrap().version(), 2);

    // Broken, then back to the serving content: the error clears too.
    write_atomic(&path, b"garbage");
    poll_until(WAIT, "the error is reported", || async {
        error_of(&live, "x").await.is_some()
    })
    .await;
    write_atomic(&path, &f.counter);
    poll_until(WAIT, "the error clears", || async {
        error_of(&live, "x").await.is_none()
    })
    .await;
    assert_eq!(
        live.get("x").unwrap().version(),
        2,
        "same content, same version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_plugin_is_not_found_and_running_calls_finish() {
    let f = fixture();
    std::fs::copy(wasm("testing/sleep"), f.dir.join("sleep.wasm")).unwrap();
    let live = open(&f).await;

    // A call in flight when its file is removed finishes.
    let sleep = live.get("sleep").unwrap();
    let ctx = Context {
        config: r#"{"ms": 600}"#.into(),
        ..Context::direct("sleep")
    };
    let call = {
        let host = f.host.clone();
        tokio::spawn(async move { host.call(&sleep, &ctx, "{}").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::remove_file(f.dir.join("sleep.wasm")).unwrap();
    std::fs::remove_file(f.dir.join("x.wasm")).unwrap();
    poll_until(WAIT, "the plugins are removed", || async {
        live.get("x").is_none() && live.get("sleep").is_none()
    })
    .await;
    assert_eq!(
        call.await.unwrap().expect("the running call finished"),
        "{}"
    );

    let snapshot = live.snapshot();
    assert!(snapshot.is_removed("x"));
    assert_eq!(
        snapshot.not_found_message("x"),
        "plugin `x` not found (removed)"
    );
    assert_eq!(
        snapshot.not_found_message("never"),
        "plugin `never` not found"
    );

    // A new run says so.
    let flow = flowhost::flow::parse_flow(
        Path::new("f.yaml"),
        "flow: f\nsteps:\n  - id: a\n    plugin: x\n",
        None,
    )
    .unwrap();
    let record = Executor::new(f.host.clone())
        .run(
            &flow,
            &snapshot,
            serde_json::json!({}),
            RunOptions::default(),
        )
        .await;
    let error = record.error.expect("the run failed");
    assert_eq!(error.kind, ErrorKind::PluginNotFound);
    assert_eq!(error.message, "plugin `x` not found (removed)");

    // Put back: served again, with the next version number.
    std::fs::write(f.dir.join("x.wasm"), &f.counter).unwrap();
    wait_for_hash(&live, "x", &hash(&f.counter)).await;
    assert!(!live.snapshot().is_removed("x"));
    assert_eq!(live.get("x").unwrap().version(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_into_place_delete_then_create_and_symlinks_reload() {
    let f = fixture();
    let live = open(&f).await;
    let path = f.dir.join("x.wasm");

    // Written under a hidden temporary name, then renamed: the temporary file
    // is never a plugin.
    let tmp = f.dir.join(".x.wasm.part");
    std::fs::write(&tmp, &f.counter[..100]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&tmp, &f.counter).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_for_hash(&live, "x", &hash(&f.counter)).await;
    let names: Vec<_> = live.statuses().await.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["x"]);

    // Deleted, then created again at once: never reported removed.
    let mut events = live.subscribe();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &f.echo).unwrap();
    wait_for_hash(&live, "x", &hash(&f.echo)).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            matches!(event.outcome, ReloadOutcome::Loaded { .. }),
            "{event}"
        );
    }

    // A symlink, repointed.
    let other = f.dir.parent().unwrap().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("a.wasm"), &f.counter).unwrap();
    std::fs::write(other.join("b.wasm"), &f.echo).unwrap();
    let link = f.dir.join("linked.wasm");
    std::os::unix::fs::symlink(other.join("a.wasm"), &link).unwrap();
    wait_for_hash(&live, "linked", &hash(&f.counter)).await;
    let tmp_link = f.dir.join(".linked.tmp");
    std::os::unix::fs::symlink(other.join("b.wasm"), &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &link).unwrap();
    wait_for_hash(&live, "linked", &hash(&f.echo)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_is_never_loaded_half_written() {
    let f = fixture();
    let live = open(&f).await;
    let mut events = live.subscribe();
    let path = f.dir.join("x.wasm");
    let half = f.counter.len() / 2;

    // Half the bytes, then a pause longer than the debounce and settle time.
    std::fs::write(&path, &f.counter[..half]).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        call_x(&live, &f.host).await,
        (hash(&f.echo), ECHO_OUT.into())
    );
    assert_eq!(
        error_of(&live, "x").await,
        None,
        "a fresh half file is not reported"
    );
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&f.counter[half..]).unwrap();
    }
    wait_for_hash(&live, "x", &hash(&f.counter)).await;
    assert_eq!(error_of(&live, "x").await, None);
    assert_eq!(live.get("x").unwrap().version(), 2);
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event.outcome, ReloadOutcome::Failed { .. }),
            "no error was reported for the half-written file: {event}"
        );
    }

    // Many small chunks, each within the debounce: one reload, no error.
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in f.echo.chunks(f.echo.len() / 8 + 1) {
        use std::io::Write;
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(file);
    wait_for_hash(&live, "x", &hash(&f.echo)).await;
    assert_eq!(error_of(&live, "x").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_files_reload_and_keep_the_old_definition_on_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.yaml");
    std::fs::write(&file, "flow: one\nsteps:\n  - id: a\n    plugin: x\n").unwrap();
    let flows = LiveFlows::open(&file, WatchOptions::default())
        .await
        .unwrap();
    let first = flows.get("f").expect("loaded");
    assert_eq!(first.name(), "one");

    write_atomic(&file, b"flow: two\nsteps:\n  - id: a\n    plugin: x\n");
    poll_until(WAIT, "the new flow", || async {
        flows.get("f").is_some_and(|f| f.name() == "two")
    })
    .await;
    assert_eq!(first.name(), "one", "a holder keeps its definition");

    write_atomic(&file, b"flow: three\nsteps:\n  - id: a\n    plugn: x\n");
    poll_until(WAIT, "the flow error", || async {
        flows.statuses().await[0].error.is_some()
    })
    .await;
    let error = flows.statuses().await[0].error.clone().unwrap();
    assert!(
        error.contains("f.yaml") && error.contains("plugn"),
        "{error}"
    );
    assert_eq!(
        flows.get("f").unwrap().name(),
        "two",
        "the last good flow serves"
    );
}

/// Asks `/readyz`, `/flows` and `/plugins`, each of which must answer `200`
/// within `bound`; returns `x` as `/plugins` lists it.
async fn ask_all(addr: SocketAddr, bound: Duration) -> serde_json::Value {
    let mut x = serde_json::Value::Null;
    for path in ["/readyz", "/flows", "/plugins"] {
        let started = Instant::now();
        let r = http("GET", addr, path, None).await;
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(took < bound, "{path} took {took:?}");
        if path == "/plugins" {
            x = r.json()["plugins"][0].clone();
        }
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_while_a_large_plugin_compiles() {
    // An 18 MB Python component, compiled afresh: the host's cache is new.
    let big = std::fs::read(dist_all().join("python/py-echo.wasm")).unwrap();
    let f = fixture();
    let (old, newest) = (hash(&f.echo), hash(&f.counter));
    let flows = f.dir.with_file_name("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("f.yaml"),
        "flow: f\nsteps:\n  - id: a\n    plugin: x\n",
    )
    .unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::start(f.host.clone(), &f.dir, &flows, config)
        .await
        .expect("server starts");
    let addr = server.addr();

    let compiles = f.host.compile_count();
    write_atomic(&f.dir.join("x.wasm"), &big);
    poll_until(WAIT, "the new version compiles", || async {
        f.host.compile_count() > compiles
    })
    .await;
    // While it compiles, the server answers at once, from the old version.
    for _ in 0..3 {
        let x = ask_all(addr, Duration::from_millis(100)).await;
        assert_eq!(x["hash"], old.as_str());
    }

    // Changed again while that compile runs: the newest content ends up
    // serving, after the version that was compiling.
    write_atomic(&f.dir.join("x.wasm"), &f.counter);
    poll_until(WAIT * 10, "the newest version serves", || async {
        ask_all(addr, Duration::from_secs(1)).await["hash"] == newest.as_str()
    })
    .await;
    let x = ask_all(addr, Duration::from_secs(1)).await;
    assert_eq!(
        (x["version"].as_u64(), x["error"].is_null()),
        (Some(3), true)
    );
    server.shutdown().await;
}

#[test]
fn the_plugins_command_lists_versions_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(wasm("testing/echo"), dir.join("sub/echo.wasm")).unwrap();
    let cache = tmp.path().join("cache");
    let (code, out, err) = crate::support::run(
        crate::support::flowhost()
            .args(["plugins", "--json"])
            .arg(&dir)
            .env("FLOWHOST_CACHE_DIR", &cache),
    );
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "echo");
    assert_eq!(list[0]["version"], 1);
    assert!(list[0]["error"].is_null());

    std::fs::write(dir.join("bad.wasm"), b"nope").unwrap();
    let (code, out, err) = crate::support::run(
        crate::support::flowhost()
            .arg("plugins")
            .arg(&dir)
            .env("FLOWHOST_CACHE_DIR", &cache),
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("(cached)"),
        "the second listing used the cache: {out}"
    );
    let bad = out.lines().find(|l| l.starts_with("bad")).unwrap();
    assert!(bad.contains("bad.wasm: not a WebAssembly file"), "{bad}");
}
