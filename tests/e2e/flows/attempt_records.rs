//! The record of an attempt that its step did not let finish: kept, with
//! kind `cancelled` and the time it ran.

use std::time::Duration;

use flowhost::executor::{Attempt, StepRecord, StepStatus};
use flowhost::{ErrorKind, RunStatus};
use serde_json::json;

use super::cancelled_after;
use crate::support::{run_flow, step};

/// The one attempt of a cancelled plugin step.
fn cancelled_attempt(s: &StepRecord) -> f64 {
    assert_eq!(s.status, StepStatus::Cancelled);
    assert_eq!(s.attempts.len(), 1, "{:?}", s.attempts);
    stopped(&s.attempts[0])
}

/// How long an attempt stopped mid-call ran; its fuel is unknown.
fn stopped(a: &Attempt) -> f64 {
    assert_eq!(a.attempt, 1);
    assert_eq!(
        a.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Cancelled),
        "{a:?}"
    );
    assert!(a.duration_ms > 0.0, "{a:?}");
    assert_eq!(a.fuel, None, "{a:?}");
    a.duration_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cancelled_by_a_fail_fast_sibling_is_recorded() {
    let record = run_flow(
        r#"
flow: failfast-attempt
steps:
  - id: par
    parallel:
      - {id: slow, plugin: sleep, config: {ms: 3000}}
      - {id: bad, plugin: fail, config: {kind: permanent, message: boom}}
"#,
        json!({}),
    )
    .await;
    let ms = cancelled_attempt(step(&record, "par.slow"));
    assert!(ms < 2000.0, "the attempt ran {ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_cut_by_an_enclosing_timeout_is_recorded_with_its_time() {
    let record = run_flow(
        r#"
flow: timeout-attempt
steps:
  - id: par
    timeout: 300ms
    parallel:
      - {id: slow, plugin: sleep, config: {ms: 3000}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Deadline);
    let ms = cancelled_attempt(step(&record, "par.slow"));
    assert!((250.0..2000.0).contains(&ms), "the attempt ran {ms} ms");
    // Its fuel is unknown, and left out rather than reported as 0.
    let json = serde_json::to_value(&record).unwrap();
    let slow = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "par.slow")
        .unwrap();
    assert!(slow["attempts"][0].get("fuel").is_none(), "{slow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_cut_by_an_enclosing_timeout_is_recorded() {
    let record = run_flow(
        r#"
flow: fallback-cut
steps:
  - id: par
    timeout: 300ms
    parallel:
      - id: main
        plugin: fail
        config: {message: down}
        fallback: {plugin: sleep, config: {ms: 3000}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Deadline);
    let main = step(&record, "par.main");
    assert_eq!(main.status, StepStatus::Cancelled);
    // Why its fallback ran: the step's own failure, kept.
    assert_eq!(main.error.as_ref().unwrap().message, "down");
    assert_eq!(main.attempts.len(), 1);
    let fallback = main.fallback.as_ref().expect("the fallback is recorded");
    assert_eq!(fallback.plugin, "sleep");
    assert!(fallback.version.is_some());
    assert_eq!(fallback.attempt.attempt, 1);
    let ms = stopped(&fallback.attempt);
    assert!((250.0..2000.0).contains(&ms), "the fallback ran {ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_error_handler_cut_by_a_cancelled_run_is_recorded() {
    let record = cancelled_after(
        r#"
flow: handler-cut
steps:
  - {id: bad, plugin: fail}
on_error: {plugin: sleep, config: {ms: 3000}}
"#,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(record.status, RunStatus::Cancelled);
    let handler = step(&record, "on_error");
    assert_eq!(handler.plugin.as_deref(), Some("sleep"));
    assert!(handler.version.is_some());
    let ms = cancelled_attempt(handler);
    assert!((200.0..2000.0).contains(&ms), "the handler ran {ms} ms");
}

#[tokio::test]
async fn an_attempt_keeps_its_guest_log_lines_and_peak_memory() {
    let record = run_flow(
        "flow: logs\nsteps:\n  - id: f\n    plugin: flaky\n    config: {fail_until: 2}\n    retry: {max_attempts: 2, initial_interval: 1ms}\n",
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Succeeded);
    let attempts = &step(&record, "f").attempts;
    let lines = |a: &Attempt| -> Vec<String> {
        a.logs
            .iter()
            .map(|l| format!("{} {}: {}", l.level, l.stream, l.message))
            .collect()
    };
    assert_eq!(lines(&attempts[0]), ["info log: attempt 1 fails (until 2)"]);
    assert_eq!(lines(&attempts[1]), ["info log: attempt 2 succeeds"]);
    assert!(
        attempts
            .iter()
            .all(|a| a.peak_memory.unwrap_or(0) >= 64 << 10),
        "{attempts:?}"
    );
    assert_eq!(attempts[0].logs_dropped, 0);
}

#[tokio::test]
async fn a_flooding_step_keeps_fifty_lines_and_counts_the_rest() {
    let record = run_flow(
        "flow: flood\nsteps:\n  - id: f\n    plugin: log-flood\n    continue_on_error: true\n",
        json!({}),
    )
    .await;
    let a = &step(&record, "f").attempts[0];
    assert_eq!(a.logs.len(), 50, "{a:?}");
    assert!(a.logs_dropped > 0, "{a:?}");
    assert!(a.logs.iter().all(|l| l.message.len() <= 1024));
}
