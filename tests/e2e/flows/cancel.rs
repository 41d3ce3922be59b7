//! Cancelling a run: the steps it stopped, in the record and in its message.

use std::time::Duration;

use flowhost::executor::StepStatus;
use flowhost::{ErrorKind, RunStatus};

use super::cancelled_after;
use crate::support::step;

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
