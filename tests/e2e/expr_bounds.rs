//! Expressions are bounded like guest calls: a client's input cannot make
//! one run past the flow's deadline, grow without end, or hold the server's
//! async workers. `flowhost run` and `flowhost serve` as a user runs them,
//! the one watched for time and memory, the other on a loopback port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{dist, flowhost, http, wasm};

/// The issue's flow: which items occur more than once, by a quadratic scan.
const DUP: &str = r#"flow: dup
timeout: 2s
steps:
  - id: dups
    plugin: echo
    input: {dups: "${input.items.filter(i, input.items.filter(j, j == i).size() > 1)}"}
"#;

/// `{"items": [0, 1, ..., n - 1]}`.
fn items(n: u64) -> String {
    json!({"items": (0..n).collect::<Vec<_>>()}).to_string()
}

/// How a watched process ended.
struct Watched {
    code: i32,
    stderr: String,
    took: Duration,
    peak_rss: u64,
}

/// Resident memory of `pid` in bytes, from `/proc`.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb << 10)
}

/// Runs `cmd`, sampling its memory every 10 ms; kills it (and fails) past
/// `time` or past `memory` bytes resident, so that a runaway expression
/// cannot take the machine with it.
fn watch(cmd: &mut Command, dir: &Path, time: Duration, memory: u64) -> Watched {
    let err_path = dir.join("stderr.txt");
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn flowhost");
    let mut peak_rss = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak_rss = peak_rss.max(rss(child.id()).unwrap_or(0));
        if started.elapsed() > time || peak_rss > memory {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "killed after {:?} at {} MiB resident",
                started.elapsed(),
                peak_rss >> 20
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Watched {
        code: status.code().unwrap_or(-1),
        stderr: std::fs::read_to_string(err_path).unwrap(),
        took: started.elapsed(),
        peak_rss,
    }
}

/// `flowhost run` of the flow `yaml` on `input`: how it ended, and its record.
fn run_flow(yaml: &str, input: &str) -> (Watched, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (flow, input_file, record) = (
        dir.path().join("flow.yaml"),
        dir.path().join("input.json"),
        dir.path().join("record.json"),
    );
    std::fs::write(&flow, yaml).unwrap();
    std::fs::write(&input_file, input).unwrap();
    let watched = watch(
        flowhost().args([
            "run",
            flow.to_str().unwrap(),
            "--plugins",
            dist().to_str().unwrap(),
            "--input",
            &format!("@{}", input_file.display()),
            "--record",
            record.to_str().unwrap(),
        ]),
        dir.path(),
        Duration::from_secs(20),
        1 << 30,
    );
    let record = std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("no record ({e}); stderr: {}", watched.stderr));
    (watched, serde_json::from_str(&record).unwrap())
}

#[test]
fn run_stops_a_quadratic_expression_at_the_flow_timeout() {
    let (run, record) = run_flow(DUP, &items(20_000));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["step"], "dups", "{record}");
    let kind = record["error"]["kind"].as_str().unwrap();
    assert!(matches!(kind, "deadline" | "expression"), "{record}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("expression `input.items.filter(i, "),
        "{message}"
    );
    assert!(
        run.stderr
            .contains(&format!("step dups: {kind}: expression `")),
        "{}",
        run.stderr
    );
}

#[test]
fn run_stops_an_expression_that_builds_gigabytes() {
    let input = json!({"s": "x".repeat(8 << 10)}).to_string();
    for (n, cap) in [
        (
            1_000_000,
            "stopped after 1,000,000 comprehension steps (the cap per evaluation)",
        ),
        (
            100_000,
            "stopped after building 128 MiB of values (the cap per evaluation)",
        ),
    ] {
        let yaml = format!(
            "flow: grow\nsteps:\n  - id: n\n    plugin: echo\n    input: {{n: \"${{size(lists.range({n}).map(x, input.s).join(''))}}\"}}\n"
        );
        let (run, record) = run_flow(&yaml, &input);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
        assert!(run.peak_rss < 1 << 30, "{} MiB", run.peak_rss >> 20);
        assert_eq!(record["error"]["step"], "n", "{record}");
        assert_eq!(record["error"]["kind"], "expression", "{record}");
        assert_eq!(
            record["error"]["message"],
            format!("expression `size(lists.range({n}).map(x, input.s).join(''))`: {cap}"),
        );
    }
}

const HELLO: &str = "flow: hello\nsteps:\n  - {id: hi, plugin: echo}\n";

/// `flowhost serve` on a loopback port, with two runtime workers as on the
/// machine the issue was found on; killed when dropped.
struct Serving {
    child: crate::support::Killed,
    addr: SocketAddr,
    lines: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Serving {
    /// Serves `echo`, the `dup` flow without its timeout (only the caps and
    /// cancel stop it) and `hello`, with a one-second drain.
    fn start() -> Serving {
        let dir = tempfile::tempdir().unwrap();
        let (plugins, flows) = (dir.path().join("plugins"), dir.path().join("flows"));
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::copy(wasm("testing/echo"), plugins.join("echo.wasm")).unwrap();
        std::fs::write(flows.join("dup.yaml"), DUP.replace("timeout: 2s\n", "")).unwrap();
        std::fs::write(flows.join("hello.yaml"), HELLO).unwrap();
        let config = dir.path().join("flowhost.toml");
        std::fs::write(&config, "drain_timeout = \"1s\"\n").unwrap();
        let (child, addr, lines) = crate::support::serve(
            flowhost()
                .env("TOKIO_WORKER_THREADS", "2")
                .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
                .arg(&plugins)
                .arg("--flows")
                .arg(&flows)
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::null()),
        );
        Serving {
            child,
            addr,
            lines,
            _dir: dir,
        }
    }

    async fn status(&self, id: &str) -> Value {
        let r = http("GET", self.addr, &format!("/runs/{id}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Polls a run until its status is no longer `from`; how long that took.
    async fn leaves(&self, id: &str, from: &str, limit: Duration) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let record = self.status(id).await;
            if record["status"] != from {
                return (record, started.elapsed());
            }
            assert!(started.elapsed() < limit, "run {id} still {from}: {record}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keeps_answering_while_quadratic_expressions_run() {
    let mut s = Serving::start();
    let body = items(100_000);
    let mut dups = Vec::new();
    for _ in 0..2 {
        let r = http("POST", s.addr, "/flows/dup/runs?wait=false", Some(&body)).await;
        assert_eq!(r.status, 202, "{}", r.body);
        dups.push(r.json()["run_id"].as_str().unwrap().to_string());
    }
    for id in &dups {
        s.leaves(id, "queued", Duration::from_secs(5)).await;
    }

    // Both runs evaluate; the server still answers, at once (a generous
    // bound on the slowest answer, for a loaded machine).
    let mut took = Vec::new();
    for _ in 0..10 {
        let asked = Instant::now();
        let r = http("GET", s.addr, "/healthz", None).await;
        took.push(asked.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["status"], "ok", "{}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    took.sort();
    eprintln!("/healthz beside two quadratic evaluations: {took:?}");
    assert!(
        took[5] < Duration::from_millis(100) && took[9] < Duration::from_secs(1),
        "/healthz answered in {took:?}"
    );
    let r = http("POST", s.addr, "/flows/hello/runs", Some(r#"{"hi": 1}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["output"], json!({"hi": 1}), "{}", r.body);
    for id in &dups {
        assert_eq!(s.status(id).await["status"], "running");
    }

    // Cancel stops an evaluation at once.
    let r = http("POST", s.addr, &format!("/runs/{}/cancel", dups[0]), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let (record, took) = s.leaves(&dups[0], "running", Duration::from_secs(5)).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");

    // SIGTERM stops the server within its drain timeout, leaving the other
    // run in its store to resume at the next start.
    crate::support::sigterm(&s.child);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "flowhost serve still runs 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rest: Vec<String> = s.lines.try_iter().collect();
    assert!(status.success(), "{status:?}:\n{}", rest.join("\n"));
    let stopped = format!(
        "1 left in the store to resume at the next start [\"{}\"]",
        dups[1]
    );
    assert!(
        rest.iter().any(|l| l.contains(&stopped)),
        "stderr after SIGTERM:\n{}",
        rest.join("\n")
    );
}
