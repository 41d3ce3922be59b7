//! Scale-out: several `flowhost serve` processes on one PostgreSQL database
//! (a fresh one per test, on a throwaway server the tests start themselves).
//! Any server accepts runs and any runs them; a dead worker's runs resume
//! elsewhere, a stale one writes nothing, and limits hold fleet-wide.
//! Failures name the run, the server and what its record said.

use std::time::{Duration, Instant};

use crate::support::fleet::{LEASE, Server};

mod across;
mod database;
mod limits;
mod takeover;

/// What "a few seconds" past a lease means on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(10);

/// Submits `n` runs of `flow` from 16 clients, run `i` to server `i % len`;
/// the ids answered, in submission order.
async fn submit_round_robin(servers: &[Server], flow: &str, n: usize) -> Vec<String> {
    let targets: Vec<_> = servers.iter().map(|s| (s.addr, s.name.clone())).collect();
    let clients = 16.min(n);
    let tasks = (0..clients).map(|c| {
        let (targets, path) = (targets.clone(), format!("/flows/{flow}/runs?wait=false"));
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (c..n).step_by(clients) {
                let (addr, name) = &targets[i % targets.len()];
                let r = crate::support::http("POST", *addr, &path, Some("{}")).await;
                assert_eq!(r.status, 202, "{name} refused run {i}: {}", r.body);
                ids.push((i, r.json()["run_id"].as_str().unwrap().to_string()));
            }
            ids
        })
    });
    let mut ids = Vec::new();
    for task in futures::future::join_all(tasks).await {
        ids.extend(task.unwrap());
    }
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// Polls `check` every 20 ms for up to 60 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU time (user + system) a process used so far, from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ: 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// A step that sleeps `ms` (YAML, in a top-level `steps:` list).
fn nap(id: &str, ms: u64) -> String {
    format!("  - id: {id}\n    plugin: sleep\n    config: {{ms: {ms}}}\n")
}
