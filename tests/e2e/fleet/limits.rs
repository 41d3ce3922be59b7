//! A flow's concurrency limit and the queue capacity count the whole fleet.

use std::collections::BTreeSet;

use super::*;
use crate::server::{epoch_ms, max_overlap};
use crate::support::fleet::{Fleet, Settings, worker_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_s_concurrency_limit_holds_across_the_fleet() {
    let mut fleet = Fleet::new(&["testing/sleep"]);
    fleet.flow(
        "capped",
        &format!(
            "flow: capped\nconcurrency: {{limit: 2}}\nsteps:\n{}",
            nap("nap", 300)
        ),
    );
    let servers = fleet.serve_n(3);
    let ids = submit_round_robin(&servers, "capped", 20).await;
    let records = servers[2]
        .wait_finished(&ids, Duration::from_secs(60))
        .await;
    let mut intervals = Vec::new();
    let mut workers = BTreeSet::new();
    for (id, record) in ids.iter().zip(&records) {
        assert_eq!(record["status"], "succeeded", "run {id}: {record}");
        let start = epoch_ms(record["started_at"].as_str().unwrap());
        let duration = record["duration_ms"].as_f64().unwrap();
        assert!(duration >= 300.0, "run {id}: {record}");
        // Wall clocks of one machine, at millisecond precision: trim each
        // end by 5 ms so back-to-back runs do not count as overlapping.
        intervals.push((start + 5.0, start + duration - 5.0));
        workers.insert(worker_of(record).to_string());
    }
    assert!(
        workers.len() >= 2,
        "one worker ran every run ({workers:?}): the limit was not tested across the fleet"
    );
    assert_eq!(
        max_overlap(&intervals),
        2,
        "runs of `capped` (limit 2) at once across {} workers; (start, end) ms: {intervals:?}",
        workers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_capacity_counts_the_runs_waiting_on_every_server() {
    let mut fleet = Fleet::new(&["testing/sleep"]);
    fleet.flow(
        "slow",
        &format!("flow: slow\nsteps:\n{}", nap("nap", 20_000)),
    );
    let settings = Settings {
        workers: 1,
        queue_capacity: 2,
    };
    let servers: Vec<Server> = (0..3).map(|_| fleet.serve_with(settings)).collect();
    // One run for each server's one worker.
    let mut running = Vec::new();
    for s in &servers {
        running.push(s.submit("slow", "{}").await);
    }
    for id in &running {
        servers[0]
            .wait_status(id, "running", Duration::from_secs(20))
            .await;
    }
    // Two wait, fleet-wide: the queue is full for every server, also for
    // the one that has no waiting run of its own.
    let first = servers[0].submit("slow", "{}").await;
    let second = servers[0].submit("slow", "{}").await;
    for s in &servers {
        let r = s.post("/flows/slow/runs?wait=false", "{}").await;
        assert_eq!(
            r.status, 429,
            "{} accepted a third waiting run with a fleet-wide capacity of 2: {}",
            s.name, r.body
        );
        assert_eq!(r.json()["error"]["kind"], "queue-full", "{}", r.body);
    }
    // Cancelling a waiting run on another server frees its place.
    let r = servers[2].post(&format!("/runs/{second}/cancel"), "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    servers[1]
        .wait_status(&second, "cancelled", Duration::from_secs(5))
        .await;
    servers[1].submit("slow", "{}").await;
    assert_eq!(servers[0].record(&first).await["status"], "queued");
}
