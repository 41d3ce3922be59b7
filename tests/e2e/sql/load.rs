//! 64 steps at once on a pool of 4: all finish, and the host keeps serving
//! an unrelated flow meanwhile (its latency is measured and printed).

use std::time::{Duration, Instant};

use flowhost::{Executor, RunStatus};
use serde_json::json;

use crate::support::{host, run_flow_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_steps_share_a_pool_of_four() {
    let (_db, dbs) = super::postgres::orders(4).await;
    let exec = Executor::with_services(host().clone(), flowhost::Services::new().databases(dbs));
    let flow = r#"
flow: many
steps:
  - id: each
    for_each: "${input.items}"
    max_concurrency: 64
    steps:
      - id: wait
        plugin: sql
        allow: {sql: [pg]}
        config:
          ops:
            - {op: query, db: pg, sql: "SELECT pg_sleep(0.05)::text AS slept"}
"#;
    let items: Vec<i64> = (0..64).collect();
    let busy = {
        let exec = exec.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let record = run_flow_with(&exec, flow, json!({"items": items})).await;
            (record, started.elapsed())
        })
    };
    // Meanwhile, an unrelated flow, one run after another.
    let echo = "flow: other\nsteps:\n  - id: e\n    plugin: echo\n";
    let mut latencies = Vec::new();
    while !busy.is_finished() || latencies.len() < 20 {
        let started = Instant::now();
        let record = run_flow_with(&exec, echo, json!({"x": 1})).await;
        assert_eq!(record.status, RunStatus::Succeeded);
        latencies.push(started.elapsed());
    }
    let (record, took) = busy.await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let out: serde_json::Value =
        serde_json::from_str(record.output.as_ref().unwrap().get()).unwrap();
    let outs = out.as_array().unwrap();
    assert_eq!(outs.len(), 64);
    for out in outs {
        assert_eq!(out["results"][0], json!({"ok": [{"slept": ""}]}), "{out}");
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!(
        "64 steps on a pool of 4 took {took:?}; the unrelated flow meanwhile: {} runs, p99 {p99:?}",
        latencies.len()
    );
    // 16 rounds of 50 ms at least; generous bounds only.
    assert!(
        took >= Duration::from_millis(750),
        "{took:?}: the pool bounds the concurrency"
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
}
