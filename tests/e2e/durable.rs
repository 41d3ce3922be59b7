//! Durable runs through the `flowhost serve` binary on a SQLite store, killed
//! with SIGKILL mid-way and started again: every answered run finishes, and
//! no step whose result was journaled runs again. The `append` plugin writes
//! `<run id> <step id>` (or the input's `line`) to a file for each call, so
//! the file counts the calls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Killed, flowhost, http};

/// A plugins folder, a flows folder, an output folder and a store, in one
/// temporary folder.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(plugins: &[&str], flows: &[(&str, String)]) -> Setup {
        let dir = crate::support::served_folder(plugins);
        for (stem, yaml) in flows {
            std::fs::write(dir.path().join(format!("flows/{stem}.yaml")), yaml).unwrap();
        }
        std::fs::write(
            dir.path().join("flowhost.toml"),
            "workers = 64\nqueue_capacity = 1000\ndrain_timeout = \"1s\"\n",
        )
        .unwrap();
        Setup { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("runs.db")
    }

    /// `flowhost serve` on this setup; its address.
    fn serve(&self) -> (Killed, SocketAddr) {
        let d = self.dir.path();
        let (child, addr, _lines) = crate::support::serve(
            flowhost()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .arg("--plugins")
                .arg(d.join("plugins"))
                .arg("--flows")
                .arg(d.join("flows"))
                .arg("--config")
                .arg(d.join("flowhost.toml"))
                .arg("--store")
                .arg(format!("sqlite:{}", self.store().display()))
                .env("NO_COLOR", "1")
                .env("FLOWHOST_LOG", "warn")
                .stdout(Stdio::null()),
        );
        (child, addr)
    }

    /// How many times each line was written to `log.txt`.
    fn calls(&self) -> BTreeMap<String, usize> {
        let text = std::fs::read_to_string(self.out().join("log.txt")).unwrap_or_default();
        let mut calls = BTreeMap::new();
        for line in text.lines() {
            *calls.entry(line.to_string()).or_default() += 1;
        }
        calls
    }

    /// The (run, path) pairs whose results the store journaled, read from
    /// the file the killed server left.
    fn journaled(&self) -> BTreeSet<(String, String)> {
        let db = rusqlite::Connection::open(self.store()).unwrap();
        let mut q = db
            .prepare(
                "SELECT run_id, path FROM steps WHERE json_extract(entry, '$.retry_at') IS NULL",
            )
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn integrity(&self) -> String {
        let db = rusqlite::Connection::open(self.store()).unwrap();
        db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// A step granted `out/` read-write, appending to `log.txt`.
    fn append(&self, id: &str, extra: &str) -> String {
        format!(
            "  - id: {id}\n    plugin: append\n    config: {{file: /out/log.txt}}\n    \
             allow: {{dirs: [{{host: \"{}\", guest: /out, mode: rw}}]}}\n{extra}",
            self.out().display()
        )
    }
}

fn kill(child: &mut Killed) {
    // SIGKILL: no drain, no shutdown, nothing flushed.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Submits `n` runs of `flow` from 16 clients; returns the ids answered.
async fn submit(addr: SocketAddr, flow: &str, n: usize) -> Vec<String> {
    let path = format!("/flows/{flow}/runs?wait=false");
    let per = n.div_ceil(16);
    let clients = (0..16).map(|c| {
        let path = path.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..per.min(n.saturating_sub(c * per)) {
                let r = http("POST", addr, &path, Some("{}")).await;
                assert_eq!(r.status, 202, "{}", r.body);
                ids.push(r.json()["run_id"].as_str().unwrap().to_string());
            }
            ids
        })
    });
    let mut ids = Vec::new();
    for c in futures::future::join_all(clients).await {
        ids.extend(c.unwrap());
    }
    ids
}

/// Waits until every run in `ids` finished; returns their records.
async fn finished(addr: SocketAddr, ids: &[String], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut records = Vec::new();
    for id in ids {
        loop {
            let r = http("GET", addr, &format!("/runs/{id}"), None).await;
            let record = r.json();
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                records.push(record);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never finished: {record}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    records
}

/// Polls `check` every 20 ms for up to 60 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_every_answered_run_without_rerunning_journaled_steps() {
    let setup = Setup::new(&["testing/append", "testing/sleep"], &[]);
    let flow = format!(
        "flow: kill\nsteps:\n{}  - id: nap\n    plugin: sleep\n    config: {{ms: 1000}}\n{}",
        setup.append("a", ""),
        setup.append("b", "")
    );
    std::fs::write(setup.dir.path().join("flows/kill.yaml"), flow).unwrap();
    let (mut child, addr) = setup.serve();
    let ids = submit(addr, "kill", 300).await;
    assert_eq!(ids.len(), 300);
    // Kill once some runs finished and others are mid-way.
    until("100 runs to finish", || {
        setup.calls().keys().filter(|l| l.ends_with(" b")).count() >= 100
    })
    .await;
    kill(&mut child);
    let journaled = setup.journaled();
    let before = setup.calls();
    assert!(
        before.keys().filter(|l| l.ends_with(" b")).count() < 300,
        "every run finished before the kill: nothing was tested"
    );

    let (mut child, addr) = setup.serve();
    let records = finished(addr, &ids, Duration::from_secs(120)).await;
    for r in &records {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    let calls = setup.calls();
    for id in &ids {
        for step in ["a", "b"] {
            let line = format!("{id} {step}");
            let n = calls.get(&line).copied().unwrap_or(0);
            assert!(n >= 1, "{line} never ran");
            if journaled.contains(&(id.clone(), step.to_string())) {
                assert_eq!(n, 1, "{line} was journaled at the kill, yet ran {n} times");
            } else {
                assert!(n <= 2, "{line} ran {n} times");
            }
        }
    }
    kill(&mut child);
    assert_eq!(setup.integrity(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waiting_at_the_kill_runs_at_its_time_after_the_restart() {
    let setup = Setup::new(&["testing/flaky"], &[]);
    let flow = "flow: later\nsteps:\n  - id: f\n    plugin: flaky\n    config: {fail_until: 2}\n    \
                retry: {max_attempts: 3, initial_interval: 3s, jitter: none}\n";
    std::fs::write(setup.dir.path().join("flows/later.yaml"), flow).unwrap();
    let (mut child, addr) = setup.serve();
    let ids = submit(addr, "later", 1).await;
    // Attempt 1 failed and its retry is scheduled 3 s later: kill now.
    until("the retry to be journaled", || {
        rusqlite::Connection::open(setup.store())
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM steps WHERE json_extract(entry, '$.retry_at') IS NOT NULL",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0)
            == 1
    })
    .await;
    kill(&mut child);
    let (mut child, addr) = setup.serve();
    let record = finished(addr, &ids, Duration::from_secs(30))
        .await
        .remove(0);
    kill(&mut child);
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["output"]["attempt"], 2, "{record}");
    let attempts = record["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record}");
    let first_end =
        attempts[0]["start_ms"].as_f64().unwrap() + attempts[0]["duration_ms"].as_f64().unwrap();
    let gap = attempts[1]["start_ms"].as_f64().unwrap() - first_end;
    // Not at once: at its time (3 s after the failure), never before it.
    assert!(
        gap >= 2900.0,
        "the retry started {gap} ms after the failure"
    );
    assert!(gap < 30_000.0, "{gap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_for_each_does_not_rerun_its_finished_items() {
    let setup = Setup::new(&["testing/append", "testing/sleep"], &[]);
    let flow = format!(
        "flow: items\nsteps:\n  - id: each\n    for_each: \"${{lists.range(100)}}\"\n    max_concurrency: 10\n    steps:\n\
         \x20     - id: nap\n        plugin: sleep\n        config: {{ms: 100}}\n{}",
        setup
            .append("put", "    input: {line: \"${item}\"}\n")
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    std::fs::write(setup.dir.path().join("flows/items.yaml"), flow).unwrap();
    let (mut child, addr) = setup.serve();
    let ids = submit(addr, "items", 1).await;
    until("30 items to finish", || setup.calls().len() >= 30).await;
    kill(&mut child);
    let journaled = setup.journaled();
    assert!(journaled.len() < 200, "the run finished before the kill");
    let (mut child, addr) = setup.serve();
    let record = finished(addr, &ids, Duration::from_secs(60))
        .await
        .remove(0);
    kill(&mut child);
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["output"].as_array().unwrap().len(), 100, "{record}");
    let calls = setup.calls();
    for i in 0..100 {
        let n = calls.get(&i.to_string()).copied().unwrap_or(0);
        let path = format!("each[{i}].put");
        if journaled.contains(&(ids[0].clone(), path)) {
            assert_eq!(
                n, 1,
                "item {i} was journaled at the kill, yet ran {n} times"
            );
        } else {
            assert!((1..=2).contains(&n), "item {i} ran {n} times");
        }
    }
    assert_eq!(setup.integrity(), "ok");
}

#[test]
fn a_store_that_cannot_be_used_is_refused_at_start_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database at all, not even close").unwrap();
    let before = std::fs::read(&garbage).unwrap();
    for (store, says) in [
        (
            format!("sqlite:{}", garbage.display()),
            "not a flowhost store".to_string(),
        ),
        (
            "mysql://db".to_string(),
            "unknown store `mysql://db`".to_string(),
        ),
    ] {
        let out = flowhost()
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(dir.path())
            .arg("--flows")
            .arg(dir.path())
            .args(["--store", &store])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{store}: {stderr}");
        assert!(stderr.contains(&says), "{store}: {stderr}");
    }
    assert_eq!(std::fs::read(&garbage).unwrap(), before);
}
