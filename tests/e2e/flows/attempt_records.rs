//! The record of an attempt that its step did not let finish: kept, with
//! kind `cancelled` and the time it ran.

use flowhost::ErrorKind;
use flowhost::executor::{StepRecord, StepStatus};
use serde_json::json;

use crate::support::{run_flow, step};

/// The one attempt of a cancelled plugin step.
fn cancelled_attempt(s: &StepRecord) -> f64 {
    assert_eq!(s.status, StepStatus::Cancelled);
    assert_eq!(s.attempts.len(), 1, "{:?}", s.attempts);
    let a = &s.attempts[0];
    assert_eq!(a.attempt, 1);
    assert_eq!(
        a.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Cancelled),
        "{a:?}"
    );
    assert!(a.duration_ms > 0.0, "{a:?}");
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
