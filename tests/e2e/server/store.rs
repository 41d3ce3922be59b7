//! Runs kept in a store: listing with pagination, idempotent submission,
//! reruns, and a durable store that leaves unfinished runs to the next start.

use std::sync::Arc;

use flowhost::store::StoreUrl;

use super::*;
use crate::support::http_with;

/// A flow of `append` steps writing to `log.txt` in `dir` around a nap of
/// `nap_ms`: `a` (line "a"), `nap`, `b` (the input's `line`, else "b").
fn append_flow(name: &str, dir: &Path, nap_ms: u64) -> String {
    let grant = format!(
        "    config: {{file: /out/log.txt}}\n    allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n",
        dir.display()
    );
    format!(
        "flow: {name}\nsteps:\n  - id: a\n    plugin: append\n    input: {{line: a}}\n{grant}\
         \x20 - id: nap\n    plugin: sleep\n    config: {{ms: {nap_ms}}}\n\
         \x20 - id: b\n    plugin: append\n    input: {{line: \"${{has(input.line) ? input.line : 'b'}}\"}}\n{grant}"
    )
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sqlite_config(dir: &Path) -> ServerConfig {
    ServerConfig {
        store: Some(StoreUrl::Sqlite(dir.join("runs.db"))),
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_a_page_at_a_time() {
    let s = Served::start(&["testing/echo"], &[("greet", GREET)], config()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s
            .post("/flows/greet/runs", &format!("{{\"name\": \"n{i}\"}}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(r.json()["run_id"].as_str().unwrap().to_string());
        // Distinct acceptance times make the order certain.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/runs?flow=greet&limit=2".to_string();
    loop {
        let r = s.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        for run in page["runs"].as_array().unwrap() {
            assert_eq!(run["flow"], "greet");
            assert_eq!(run["status"], "succeeded");
            seen.push(run["run_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/runs?flow=greet&limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = s.get("/runs?status=failed").await;
    assert_eq!(r.json()["runs"], json!([]));
    let r = s.get("/runs?limit=0").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.get("/runs?cursor=nonsense").await;
    assert_eq!(r.status, 400, "{}", r.body);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_gives_one_run_even_when_sent_at_once() {
    let s = Served::start(
        &["testing/sleep"],
        &[("nap", &sleep_flow("nap", 200, ""))],
        config(),
    )
    .await;
    let addr = s.addr;
    let sends = (0..8).map(|_| {
        tokio::spawn(async move {
            http_with(
                "POST",
                addr,
                "/flows/nap/runs",
                Some("{}"),
                &[("idempotency-key", "order-42")],
            )
            .await
        })
    });
    let answers = futures::future::join_all(sends).await;
    let mut ids = std::collections::BTreeSet::new();
    for a in answers {
        let r = a.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["status"], "succeeded", "{}", r.body);
        ids.insert(r.json()["run_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let listed = s.get("/runs?flow=nap").await.json();
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1, "{listed}");
    // A later submission with the key answers the same run; another key, a new one.
    let again = http_with(
        "POST",
        addr,
        "/flows/nap/runs",
        Some("{}"),
        &[("idempotency-key", "order-42")],
    )
    .await;
    assert!(ids.contains(again.json()["run_id"].as_str().unwrap()));
    let other = http_with(
        "POST",
        addr,
        "/flows/nap/runs",
        Some("{}"),
        &[("idempotency-key", "order-43")],
    )
    .await;
    assert!(!ids.contains(other.json()["run_id"].as_str().unwrap()));
    let bad = http_with(
        "POST",
        addr,
        "/flows/nap/runs",
        Some("{}"),
        &[("idempotency-key", "")],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_reuses_the_steps_before_its_from_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let flow = append_flow("twice", &out, 10);
    let s = Served::start(
        &["testing/append", "testing/sleep"],
        &[("twice", &flow)],
        sqlite_config(dir.path()),
    )
    .await;
    let first = s.post("/flows/twice/runs", "{}").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(log_lines(&out), ["a", "b"]);

    // From the start: every step runs again.
    let r = s.post(&format!("/runs/{id}/rerun"), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json()["derived_from"],
        json!({"run_id": id, "step": null})
    );
    s.wait_finished(r.json()["run_id"].as_str().unwrap()).await;
    assert_eq!(log_lines(&out), ["a", "b", "a", "b"]);

    // From `nap`: `a` is reused, `nap` and `b` run.
    let r = s
        .post(&format!("/runs/{id}/rerun"), r#"{"from": "nap"}"#)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let rerun = s.wait_finished(r.json()["run_id"].as_str().unwrap()).await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(log_lines(&out), ["a", "b", "a", "b", "b"]);
    assert_eq!(rerun["steps"].as_array().unwrap().len(), 3, "{rerun}");

    // From `b` with a new input: `b` gets it.
    let r = s
        .post(
            &format!("/runs/{id}/rerun"),
            r#"{"from": "b", "input": {"line": "patched"}}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let rerun = s.wait_finished(r.json()["run_id"].as_str().unwrap()).await;
    assert_eq!(rerun["output"], json!({"appended": "patched"}), "{rerun}");
    assert_eq!(log_lines(&out).last().unwrap(), "patched");
    assert_eq!(log_lines(&out).len(), 6);

    let r = s
        .post(&format!("/runs/{id}/rerun"), r#"{"from": "nope"}"#)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.post("/runs/no-such-run/rerun", "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    s.shutdown().await;
}

/// A server on a SQLite store, which a test stops and starts again; a
/// short drain leaves what runs to the next start.
struct Restarts {
    host: Host,
    plugins: PathBuf,
    flows: PathBuf,
    config: ServerConfig,
    _dirs: tempfile::TempDir,
}

impl Restarts {
    fn new(store: &Path, plugins: &[&str], flows: &[(&str, &str)]) -> Restarts {
        let (dirs, plugins, flows) = folders(plugins, flows);
        Restarts {
            host: Host::new(Config::default().cache(Some(cache_dir()))).expect("host"),
            plugins,
            flows,
            config: ServerConfig {
                drain_timeout: Duration::from_millis(100),
                ..sqlite_config(store)
            },
            _dirs: dirs,
        }
    }

    async fn start(&self) -> Server {
        Server::start(
            self.host.clone(),
            &self.plugins,
            &self.flows,
            self.config.clone(),
        )
        .await
        .expect("server starts")
    }
}

/// Starts a run of `flow` without waiting; its id.
async fn submit(server: &Server, flow: &str, input: &str) -> String {
    let r = http(
        "POST",
        server.addr(),
        &format!("/flows/{flow}/runs?wait=false"),
        Some(input),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["run_id"].as_str().unwrap().to_string()
}

/// Stops `server`, which must leave exactly `id` to resume.
async fn stop_leaving(server: Server, id: &str) {
    let report = server.shutdown().await;
    assert_eq!(report.left_to_resume, [id], "{report:?}");
    assert!(report.cancelled_running.is_empty(), "{report:?}");
}

/// Polls until the file `log.txt` in `dir` holds `lines`.
async fn logged(dir: &Path, lines: &'static [&'static str]) {
    let dir = dir.to_path_buf();
    poll_until(Duration::from_secs(10), "the log lines", move || {
        let done = log_lines(&dir) == lines;
        async move { done }
    })
    .await;
}

/// Polls run `id` until it finished; returns its record.
async fn finished_record(addr: SocketAddr, id: &str) -> Value {
    let seen = Arc::new(tokio::sync::Mutex::new(Value::Null));
    let keep = seen.clone();
    let path = format!("/runs/{id}");
    poll_until(Duration::from_secs(20), "the run finishes", move || {
        let (keep, path) = (keep.clone(), path.clone());
        async move {
            let record = http("GET", addr, &path, None).await.json();
            let done = !matches!(record["status"].as_str(), Some("queued" | "running"));
            *keep.lock().await = record;
            done
        }
    })
    .await;
    seen.lock().await.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_store_keeps_unfinished_runs_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let flow = append_flow("slow", &out, 3000);
    let servers = Restarts::new(
        dir.path(),
        &["testing/append", "testing/sleep"],
        &[("slow", &flow)],
    );
    let server = servers.start().await;
    let id = submit(&server, "slow", "{}").await;
    logged(&out, &["a"]).await;
    stop_leaving(server, &id).await;

    // The next start resumes it: `a` is not run again.
    let server = servers.start().await;
    let record = finished_record(server.addr(), &id).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(log_lines(&out), ["a", "b"], "{record}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_steps_events_start_their_runs_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let source = "flow: source\nsteps:\n  - id: tell\n    plugin: emit\n    config: {topic: made}\n    input: {line: made}\n  - id: nap\n    plugin: sleep\n    config: {ms: 3000}\n";
    let sink = format!(
        "flow: sink\ntriggers: [{{event: made}}]\nsteps:\n  - id: write\n    plugin: append\n    config: {{file: /out/log.txt}}\n    allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n",
        out.display()
    );
    let servers = Restarts::new(
        dir.path(),
        &["testing/emit", "testing/sleep", "testing/append"],
        &[("source", source), ("sink", &sink)],
    );
    let server = servers.start().await;
    let id = submit(&server, "source", "{}").await;
    logged(&out, &["made"]).await;
    stop_leaving(server, &id).await;

    // Resumed, `tell` is replayed: its event is handed on again under the
    // same key, and starts no second sink run.
    let server = servers.start().await;
    let record = finished_record(server.addr(), &id).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log_lines(&out), ["made"]);
    let sinks = http("GET", server.addr(), "/runs?flow=sink", None)
        .await
        .json();
    assert_eq!(sinks["runs"].as_array().unwrap().len(), 1, "{sinks}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_keeps_the_plugin_and_flow_versions_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let flow = "flow: pinned\nsteps:\n  - id: nap\n    plugin: sleep\n    config: {ms: 2000}\n  - id: last\n    plugin: tail\n";
    let servers = Restarts::new(dir.path(), &["testing/sleep"], &[("pinned", flow)]);
    // `tail` is the echo plugin when the run starts.
    let tail = servers.plugins.join("tail.wasm");
    std::fs::copy(wasm("testing/echo"), &tail).unwrap();
    let server = servers.start().await;
    let id = submit(&server, "pinned", r#"{"v": 1}"#).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_leaving(server, &id).await;

    // While it is down: `tail` becomes another plugin, and the flow loses a step.
    std::fs::copy(wasm("testing/counter"), &tail).unwrap();
    std::fs::write(
        servers.flows.join("pinned.yaml"),
        "flow: pinned\nsteps:\n  - id: only\n    plugin: tail\n",
    )
    .unwrap();
    let server = servers.start().await;
    let record = finished_record(server.addr(), &id).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    // The echo plugin ran: it returns its input; the counter would say `calls`.
    assert_eq!(record["output"], json!({"v": 1}), "{record}");
    let paths: Vec<_> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].clone())
        .collect();
    assert_eq!(paths, [json!("nap"), json!("last")], "{record}");
    // A new run gets the new versions.
    let r = http("POST", server.addr(), "/flows/pinned/runs", Some("{}")).await;
    assert_eq!(r.json()["output"], json!({"calls": 1}), "{}", r.body);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_deadline_passed_while_the_server_was_down_fails_with_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let flow = "flow: due\ntimeout: 2s\nsteps:\n  - id: nap\n    plugin: sleep\n    config: {ms: 1500}\n  - id: after\n    plugin: sleep\n";
    let servers = Restarts::new(dir.path(), &["testing/sleep"], &[("due", flow)]);
    let server = servers.start().await;
    let id = submit(&server, "due", "{}").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_leaving(server, &id).await;
    // Down for longer than the flow's timeout.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let server = servers.start().await;
    let record = finished_record(server.addr(), &id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["kind"], "deadline", "{record}");
    server.shutdown().await;
}
