//! Deadlines and cancellation: the flow timeout, step timeouts, fail-fast.

use std::time::{Duration, Instant};

use flowhost::executor::StepStatus;
use flowhost::{Config, Executor, Host, RunOptions, RunStatus};
use serde_json::json;

use crate::support::{dist, executor, parse, plugin_set, poll_until, run_flow, step};

#[tokio::test]
async fn flow_deadline_cuts_a_retry_loop() {
    let flow = parse(
        r#"
flow: deadline
timeout: 400ms
steps:
  - id: f
    plugin: fail
    config: {kind: transient, message: busy}
    retry:
      max_attempts: 50
      initial_interval: 100ms
      backoff_coefficient: 1
      jitter: none
"#,
    );
    // Compiled before the clock starts: only the run is timed.
    let plugins = plugin_set(&flow).await;
    let started = Instant::now();
    let record = executor()
        .run(&flow, &plugins, json!({}), RunOptions::default())
        .await;
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert!(
        ["transient", "deadline"].contains(&error.kind.as_str()),
        "{error:?}"
    );
    let attempts = step(&record, "f").attempts.len();
    assert!((2..10).contains(&attempts), "{attempts} attempts");
    assert!(record.duration_ms < 600.0, "{} ms", record.duration_ms);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_a_busy_sibling() {
    // A host of its own, to count its guest instances.
    let host = Host::new(Config::default()).expect("host");
    let flow = parse(
        r#"
flow: failfast
steps:
  - id: par
    parallel:
      - id: busy
        plugin: busy-loop
        timeout: 30s
        limits: {fuel: 1000000000000000}
      - id: boom
        plugin: sleep
        config: {ms: 100}
        input: {x: 1}
      - id: fail
        plugin: fail
        config: {kind: permanent, message: boom}
"#,
    );
    let files = flowhost::scan_dir(dist()).unwrap();
    let (plugins, errors) =
        flowhost::load_plugins(&host, &files, flow.plugin_names().into_iter()).await;
    assert!(errors.is_empty(), "{errors:?}");
    let exec = Executor::new(host.clone());
    let record = exec
        .run(&flow, &plugins, json!({}), RunOptions::default())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("par.fail", "permanent")
    );
    assert!(record.duration_ms < 1000.0, "{} ms", record.duration_ms);
    assert_eq!(step(&record, "par.busy").status, StepStatus::Cancelled);
    assert_eq!(step(&record, "par.boom").status, StepStatus::Cancelled);
    assert_eq!(step(&record, "par.fail").status, StepStatus::Failed);
    assert_eq!(step(&record, "par").status, StepStatus::Failed);
    // The busy guest really stopped.
    poll_until(
        Duration::from_millis(500),
        "no guest instance alive",
        || {
            let alive = host.instances_alive();
            async move { alive == 0 }
        },
    )
    .await;
}

#[tokio::test]
async fn step_timeout_is_a_deadline_error() {
    let record = run_flow(
        r#"
flow: slow
steps:
  - id: s
    plugin: sleep
    config: {ms: 500}
    timeout: 100ms
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("s", "deadline")
    );
    assert_eq!(error.message, "the call ran past its deadline of 100ms");
    let s = step(&record, "s");
    assert_eq!(s.attempts.len(), 1);
    assert!(s.attempts[0].duration_ms < 400.0, "{:?}", s.attempts[0]);
    assert!(record.duration_ms < 450.0, "{} ms", record.duration_ms);
}

#[tokio::test]
async fn composite_step_timeout_bounds_the_whole_step() {
    let record = run_flow(
        r#"
flow: slowpar
steps:
  - id: group
    timeout: 150ms
    parallel:
      - id: a
        plugin: sleep
        config: {ms: 1000}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("group", "deadline")
    );
    assert_eq!(error.message, "the step ran past its timeout of 150ms");
    assert_eq!(step(&record, "group.a").status, StepStatus::Cancelled);
    assert!(record.duration_ms < 600.0, "{} ms", record.duration_ms);
}

#[tokio::test]
async fn a_call_cut_by_the_flow_timeout_names_it() {
    let record = run_flow(
        r#"
flow: slow
timeout: 300ms
steps:
  - id: s
    plugin: sleep
    config: {ms: 2000}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("s", "deadline")
    );
    assert_eq!(error.message, "the call ran past the flow's timeout: 300ms");
    assert!(record.duration_ms < 1500.0, "{} ms", record.duration_ms);
}
