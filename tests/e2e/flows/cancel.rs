//! Cancelling a run: the steps it stopped, in the record and in its message.

use std::time::Duration;

use flowhost::executor::StepStatus;
use flowhost::{ErrorKind, RunOptions, RunRecord, RunStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{executor, parse, plugin_set, step};

/// Runs `yaml`, cancelling it after `after`.
async fn cancelled_after(yaml: &str, after: Duration) -> RunRecord {
    let flow = parse(yaml);
    let plugins = plugin_set(&flow).await;
    let cancel = CancellationToken::new();
    let options = RunOptions {
        cancel: Some(cancel.clone()),
        ..RunOptions::default()
    };
    let trigger = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        cancel.cancel();
    });
    let record = executor().run(&flow, &plugins, json!({}), options).await;
    trigger.await.unwrap();
    record
}

#[tokio::test]
async fn a_cancelled_run_names_the_step_it_stopped() {
    let record = cancelled_after(
        r#"
flow: sig
steps:
  - id: first
    plugin: echo
  - id: wait
    plugin: sleep
    config: {ms: 5000}
"#,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(record.status, RunStatus::Cancelled);
    assert!(record.duration_ms < 2000.0, "{}", record.duration_ms);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Cancelled);
    assert_eq!(error.step, "wait");
    assert_eq!(step(&record, "wait").status, StepStatus::Cancelled);
    // What `flowhost run` prints after `flow sig cancelled: `.
    assert_eq!(
        error.to_string(),
        "the run was cancelled while step wait was running"
    );
    assert_eq!(
        error.causes,
        ["step wait: cancelled: the run was cancelled"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_names_the_innermost_running_steps() {
    let record = cancelled_after(
        r#"
flow: sig2
steps:
  - id: par
    fail_fast: false
    parallel:
      - id: quick
        plugin: echo
      - id: slow
        plugin: sleep
        config: {ms: 5000}
      - id: each
        for_each: [1]
        steps:
          - id: nap
            plugin: sleep
            config: {ms: 5000}
"#,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(record.status, RunStatus::Cancelled);
    let error = record.error.as_ref().unwrap();
    // The composites around them are not named, nor the finished branch.
    let mut named: Vec<&str> = error.step.split(", ").collect();
    named.sort_unstable();
    assert_eq!(named, ["par.each[0].nap", "par.slow"], "{error:?}");
    assert!(error.to_string().contains("while steps "), "{error}");
    assert_eq!(step(&record, "par.quick").status, StepStatus::Succeeded);
}
