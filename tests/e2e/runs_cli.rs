//! `flowhost runs list|show|cancel|rerun` as a user runs them: on a store
//! file (`--store`, with a server running on it or not) and through a
//! running server (`--server`); and `flowhost run --store`, which records a
//! one-shot run there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{flowhost, http, run, wasm};

const HELLO: &str =
    "flow: hello\nsteps:\n  - id: greet\n    plugin: echo\n  - id: again\n    plugin: echo\n";
const BROKEN: &str = "flow: broken\nsteps:\n  - id: boom\n    plugin: fail\n    config: {kind: permanent, message: no way}\n";
const NAP: &str = "flow: nap\nsteps:\n  - id: nap\n    plugin: sleep\n    config: {ms: 60000}\n";

/// A plugins folder (echo, fail, sleep), a flows folder (hello, broken,
/// nap) and a data folder, in one temporary folder.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let (plugins, flows) = (tmp.path().join("plugins"), tmp.path().join("flows"));
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&flows).unwrap();
        for name in ["echo", "fail", "sleep"] {
            let to = plugins.join(format!("{name}.wasm"));
            std::fs::copy(wasm(&format!("testing/{name}")), to).unwrap();
        }
        for (name, yaml) in [("hello", HELLO), ("broken", BROKEN), ("nap", NAP)] {
            std::fs::write(flows.join(format!("{name}.yaml")), yaml).unwrap();
        }
        Dirs { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `sqlite:` and the store file in the temporary folder.
    fn store(&self) -> String {
        format!("sqlite:{}", self.path("runs.db").display())
    }

    /// `flowhost run` of flow `name` recorded in the store.
    fn run_recorded(&self, name: &str, input: &str, extra: &[&str]) -> Command {
        self.run_in(&self.store(), name, input, extra)
    }

    /// `flowhost run` of flow `name` recorded in `store`.
    fn run_in(&self, store: &str, name: &str, input: &str, extra: &[&str]) -> Command {
        let mut cmd = cli(self);
        cmd.arg("run")
            .arg(self.path("flows").join(format!("{name}.yaml")))
            .arg("--plugins")
            .arg(self.path("plugins"))
            .args(["--input", input, "--store", store])
            .args(extra);
        cmd
    }
}

/// The binary, with a compile cache of its own and a default data folder in
/// the temporary folder.
fn cli(dirs: &Dirs) -> Command {
    let mut cmd = flowhost();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-runs-cli-compile-cache");
    cmd.env("FLOWHOST_CACHE_DIR", cache)
        .env("FLOWHOST_DATA_DIR", dirs.path("data"))
        .env("NO_COLOR", "1");
    cmd
}

/// `flowhost runs ARGS`: (exit code, stdout, stderr).
fn runs(dirs: &Dirs, args: &[&str]) -> (i32, String, String) {
    run(cli(dirs).arg("runs").args(args))
}

/// The run id `flowhost run --store` said it recorded.
fn recorded_id(err: &str) -> String {
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("flowhost: run "))
        .unwrap_or_else(|| panic!("no `recorded` line in:\n{err}"));
    line.split_whitespace().next().unwrap().to_string()
}

/// A `flowhost serve` process, killed when dropped.
struct Serve {
    _child: crate::support::Killed,
    addr: SocketAddr,
    url: String,
    _lines: Receiver<String>,
}

impl Serve {
    fn start(dirs: &Dirs, store: &str) -> Serve {
        let (child, addr, lines) = crate::support::serve(
            cli(dirs)
                .args([
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--store",
                    store,
                    "--plugins",
                ])
                .arg(dirs.path("plugins"))
                .arg("--flows")
                .arg(dirs.path("flows"))
                .arg("--data-dir")
                .arg(dirs.path("data"))
                .stdout(Stdio::null()),
        );
        Serve {
            _child: child,
            addr,
            url: format!("http://{addr}"),
            _lines: lines,
        }
    }

    /// Submits a run of `flow`; waits for it unless `wait` is false.
    async fn submit(&self, flow: &str, input: &str, wait: bool) -> String {
        let path = format!("/flows/{flow}/runs?wait={wait}");
        let r = http("POST", self.addr, &path, Some(input)).await;
        assert!(r.status == 200 || r.status == 202, "{}", r.body);
        r.json()["run_id"].as_str().unwrap().to_string()
    }
}

/// Runs `flowhost runs show ID --json ARGS` until the run's status is
/// `status`; returns the record.
fn wait_for(dirs: &Dirs, id: &str, status: &str, args: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, err) = runs(dirs, &[&["show", id, "--json"], args].concat());
        let record: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        if record["status"] == status {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} not {status} after 60 s: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rows of a `runs list` table (its header left out) and its
/// `next page:` command line, if any.
fn table(out: &str) -> (Vec<Vec<String>>, Option<String>) {
    let mut lines = out.lines();
    assert!(lines.next().unwrap_or("").starts_with("RUN ID  "), "{out}");
    let mut rows = Vec::new();
    let mut next = None;
    for line in lines {
        match line.strip_prefix("next page: ") {
            Some(cmd) => next = Some(cmd.to_string()),
            None => rows.push(line.split_whitespace().map(str::to_string).collect()),
        }
    }
    (rows, next)
}

#[tokio::test]
async fn through_a_server_runs_are_listed_shown_and_cancelled() {
    let dirs = Dirs::new();
    let serve = Serve::start(&dirs, "memory");
    let server = ["--server", serve.url.as_str()];
    let hello = serve.submit("hello", r#"{"name":"Cy"}"#, true).await;
    let broken = serve.submit("broken", "{}", true).await;
    let nap = serve.submit("nap", "{}", false).await;

    // Newest first, a page at a time; the next page's command line pastes.
    let (code, out, err) = runs(&dirs, &[&["list", "--limit", "2"], &server[..]].concat());
    assert_eq!(code, 0, "{err}");
    let (rows, next) = table(&out);
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str()),
        (nap.as_str(), "nap")
    );
    assert_eq!(rows[1][..3], [broken.as_str(), "broken", "failed"]);
    let next = next.unwrap_or_else(|| panic!("no next page: {out}"));
    assert!(
        next.starts_with(&format!(
            "flowhost runs list --server {} --limit 2 --cursor ",
            serve.url
        )),
        "{next}"
    );
    let words: Vec<&str> = next.split_whitespace().skip(2).collect();
    let (code, out, err) = runs(&dirs, &words);
    assert_eq!(code, 0, "{err}");
    let (rows, next) = table(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0][..3], [hello.as_str(), "hello", "succeeded"]);
    assert_eq!(next, None, "{out}");

    let (code, out, _) = runs(
        &dirs,
        &[&["list", "--flow", "hello", "--json"], &server[..]].concat(),
    );
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(page["runs"][0]["run_id"], json!(hello));
    assert_eq!(page["next"], Value::Null);

    // A finished run: its timeline and output; a failed one exits 1.
    let (code, out, err) = runs(&dirs, &[&["show", &hello], &server[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("run {hello} of flow hello: succeeded in ")),
        "{out}"
    );
    assert!(out.contains("* critical path\n"), "{out}");
    assert!(out.contains("again"), "{out}");
    assert!(out.ends_with("output: {\"name\":\"Cy\"}\n"), "{out}");
    let (code, out, err) = runs(&dirs, &[&["show", &broken], &server[..]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("boom"), "{out}");
    assert_eq!(
        err.trim(),
        "flowhost: flow broken failed: step boom failed: permanent: no way\n  caused by: step boom: permanent: no way"
            .trim(),
    );
    let (code, out, _) = runs(&dirs, &[&["show", &broken, "--json"], &server[..]].concat());
    assert_eq!(code, 1);
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["error"]["kind"], "permanent", "{out}");

    // An unfinished run, cancelled; cancelling a finished one is refused.
    let (code, out, _) = runs(&dirs, &[&["show", &nap], &server[..]].concat());
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("run {nap} of flow nap: ")),
        "{out}"
    );
    assert!(out.contains("(not finished)"), "{out}");
    let (code, out, err) = runs(&dirs, &[&["cancel", &nap], &server[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("run {nap}: cancelling (it was ")),
        "{out}"
    );
    let record = wait_for(&dirs, &nap, "cancelled", &server);
    assert_eq!(record["error"]["kind"], "cancelled");
    let (code, _, err) = runs(&dirs, &[&["cancel", &hello], &server[..]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("run `{hello}` already finished (succeeded)")),
        "{err}"
    );

    let (code, _, err) = runs(&dirs, &[&["show", "no-such-run"], &server[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run `no-such-run`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn through_a_server_a_run_is_rerun_whole_or_from_a_step() {
    let dirs = Dirs::new();
    // A rerun from a step reuses recorded outputs: a durable store keeps them.
    let serve = Serve::start(&dirs, &dirs.store());
    let server = ["--server", serve.url.as_str()];
    let first = serve.submit("hello", r#"{"n":1}"#, true).await;

    let (code, out, err) = runs(&dirs, &[&["rerun", &first], &server[..]].concat());
    assert_eq!(code, 0, "{err}");
    let again = out.trim().to_string();
    assert_ne!(again, first);
    assert!(err.contains(&format!("a rerun of {first}")), "{err}");
    let record = wait_for(&dirs, &again, "succeeded", &server);
    assert_eq!(record["output"], json!({"n": 1}));

    let (code, out, err) = runs(
        &dirs,
        &[
            &["rerun", &first, "--from", "again", "--input", r#"{"n":2}"#],
            &server[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let from = out.trim().to_string();
    let record = wait_for(&dirs, &from, "succeeded", &server);
    assert_eq!(record["output"], json!({"n": 2}));

    let (code, _, err) = runs(&dirs, &[&["rerun", "no-such-run"], &server[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-run"), "{err}");
}

#[test]
fn bad_sources_are_refused_on_one_line_with_exit_2() {
    let dirs = Dirs::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["list", "--store", "memory"],
            "--store memory: a memory store lives only inside the server that made it",
        ),
        (
            &["list", "--store", "mysql://x"],
            "unknown store `mysql://x`",
        ),
        (
            &["show", "x", "--server", "https://x:1"],
            "`https` is not supported",
        ),
        (
            &[
                "cancel",
                "x",
                "--store",
                "sqlite:a.db",
                "--server",
                "http://x:1",
            ],
            "cannot be used with",
        ),
        (&["list", "--limit", "0"], "invalid value `0` for --limit"),
        (
            &["list", "--status", "done"],
            "invalid value `done` for --status: expected queued, running, succeeded, failed or cancelled",
        ),
        (&["rerun", "x", "--input", "{}"], "missing --from"),
    ];
    for (args, want) in cases {
        let (code, _, err) = runs(&dirs, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // A store file that does not exist is not created.
    let missing = format!("sqlite:{}", dirs.path("nope.db").display());
    let (code, _, err) = runs(&dirs, &["list", "--store", &missing]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{missing}: no such store")), "{err}");
    assert!(!dirs.path("nope.db").exists());
    // Without --store or --server: the default store, said on stderr.
    let (code, _, err) = runs(&dirs, &["cancel", "x"]);
    assert_eq!(code, 2, "{err}");
    let default = format!("sqlite:{}", dirs.path("data").join("flowhost.db").display());
    assert!(
        err.contains(&format!("flowhost: store: {default} (the default")),
        "{err}"
    );
    assert!(err.contains(&format!("{default}: no such store")), "{err}");
    // --from needs a server; a server that is not there is named.
    let (code, _, err) = runs(&dirs, &["rerun", "x", "--from", "again"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--from needs a running server"), "{err}");
    let (code, _, err) = runs(&dirs, &["list", "--server", "http://127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http://127.0.0.1:1/runs?limit=20 (--server): cannot connect"),
        "{err}"
    );
    // A one-shot run is not recorded in memory.
    let (code, _, err) = run(&mut dirs.run_in("memory", "hello", "{}", &[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--store memory: a memory store would be lost"),
        "{err}"
    );
}

#[test]
fn a_recorded_run_is_listed_and_shown_as_run_trace_printed_it() {
    let dirs = Dirs::new();
    let store = dirs.store();
    let (code, out, err) = run(&mut dirs.run_recorded("hello", r#"{"a":1}"#, &["--trace"]));
    assert_eq!((code, out.as_str()), (0, "{\"a\":1}\n"), "{err}");
    let id = recorded_id(&err);
    assert!(
        err.contains(&format!("flowhost: run {id} recorded in {store}")),
        "{err}"
    );
    let trace = &err[err.find(&format!("run {id} of flow hello")).unwrap()..];
    let trace = &trace[..trace.find("* critical path\n").unwrap() + "* critical path\n".len()];

    let (code, out, err) = runs(&dirs, &["show", &id, "--store", &store]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{trace}output: {{\"a\":1}}\n"));
    let (code, out, _) = runs(&dirs, &["show", &id, "--store", &store, "--json"]);
    assert_eq!(code, 0);
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["steps"].as_array().unwrap().len(), 2, "{out}");

    let (code, _, err) = run(&mut dirs.run_recorded("broken", "{}", &[]));
    assert_eq!(code, 1, "{err}");
    let broken = recorded_id(&err);
    let (code, out, err) = runs(&dirs, &["list", "--store", &store]);
    assert_eq!(code, 0, "{err}");
    let (rows, next) = table(&out);
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0][..3], [broken.as_str(), "broken", "failed"]);
    assert_eq!(rows[1][..3], [id.as_str(), "hello", "succeeded"]);
    assert_eq!(next, None);
    let (_, out, _) = runs(&dirs, &["list", "--store", &store, "--limit", "1"]);
    let (_, next) = table(&out);
    let next = next.unwrap_or_else(|| panic!("no next page: {out}"));
    let words: Vec<&str> = next.split_whitespace().skip(2).collect();
    assert_eq!(words[..3], ["list", "--store", store.as_str()]);
    let (_, out, _) = runs(&dirs, &words);
    assert_eq!(table(&out).0[0][0], id, "{out}");
}

#[tokio::test]
async fn on_a_stopped_store_runs_are_cancelled_and_rerun_and_a_server_resumes_them() {
    let dirs = Dirs::new();
    let store = dirs.store();
    let at = ["--store", store.as_str()];
    // A one-shot run killed mid-step stays unfinished in the store.
    let mut napping = dirs
        .run_recorded("nap", "{}", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let nap = loop {
        let (_, out, _) = runs(
            &dirs,
            &[&["list", "--status", "running", "--json"], &at[..]].concat(),
        );
        if let Some(id) = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|p| p["runs"][0]["run_id"].as_str().map(str::to_string))
        {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the run never showed as running: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    napping.kill().unwrap();
    napping.wait().unwrap();
    let (code, out, _) = runs(&dirs, &[&["show", &nap], &at[..]].concat());
    assert_eq!(code, 0);
    assert!(
        out.contains(": running (not finished; accepted at "),
        "{out}"
    );

    let (code, out, err) = runs(&dirs, &[&["cancel", &nap], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("run {nap}: cancelled (it was running; no server ran on the store)\n")
    );
    let (code, _, err) = runs(&dirs, &[&["show", &nap], &at[..]].concat());
    assert_eq!(code, 1);
    assert!(
        err.contains("cancelled from the command line while no server ran"),
        "{err}"
    );
    let (code, _, err) = runs(&dirs, &[&["cancel", &nap], &at[..]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("run `{nap}` already finished (cancelled)")),
        "{err}"
    );

    // A rerun is accepted now and runs when a server starts on the store.
    let (code, _, err) = run(&mut dirs.run_recorded("hello", r#"{"b":2}"#, &[]));
    assert_eq!(code, 0, "{err}");
    let hello = recorded_id(&err);
    let (code, out, err) = runs(&dirs, &[&["rerun", &hello], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    let again = out.trim().to_string();
    assert!(
        err.contains("it runs when a server next starts on this store"),
        "{err}"
    );
    let (_, out, _) = runs(&dirs, &[&["show", &again], &at[..]].concat());
    assert!(out.contains("of flow hello: queued (not finished"), "{out}");

    let serve = Serve::start(&dirs, &store);
    let record = wait_for(&dirs, &again, "succeeded", &["--server", &serve.url]);
    assert_eq!(record["output"], json!({"b": 2}));
    // Read while the server holds the store; writes go through the server.
    let fresh = serve.submit("hello", "{}", true).await;
    let (code, out, err) = runs(&dirs, &[&["list"], &at[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(table(&out).0[0][0], fresh, "{out}");
    for command in ["cancel", "rerun"] {
        let (code, _, err) = runs(&dirs, &[&[command, &fresh], &at[..]].concat());
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!(
                "a server runs on this store; {command} runs through it with --server URL"
            )),
            "{err}"
        );
    }
    let (code, _, err) = run(&mut dirs.run_recorded("hello", "{}", &[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("a server runs on this store; submit the run to it"),
        "{err}"
    );
}
