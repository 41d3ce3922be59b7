//! Recovering from failures: retries with backoff, circuit breakers, fallbacks.

use std::sync::Arc;
use std::time::Duration;

use flowhost::executor::{BreakerState, StepStatus};
use flowhost::{ErrorKind, EventSink, Executor, RunOptions, RunStatus};
use serde_json::json;

use super::{Events, output};
use crate::support::{executor, host, parse, run_flow, run_flow_with, step};

#[tokio::test]
async fn retry_counts_and_backs_off() {
    let record = run_flow(
        r#"
flow: retry
steps:
  - id: f
    plugin: flaky
    config: {fail_until: 3}
    retry:
      max_attempts: 5
      initial_interval: 100ms
      backoff_coefficient: 2
      jitter: none
"#,
        json!({"x": 1}),
    )
    .await;
    assert_eq!(output(&record), json!({"attempt": 3, "input": {"x": 1}}));
    let f = step(&record, "f");
    assert_eq!(f.status, StepStatus::Succeeded);
    let attempts = &f.attempts;
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        attempts[0].error.as_ref().unwrap().kind,
        ErrorKind::Transient
    );
    assert_eq!(
        attempts[1].error.as_ref().unwrap().kind,
        ErrorKind::Transient
    );
    assert!(attempts[2].error.is_none());
    // The delay runs from one attempt's end to the next one's start.
    let gap =
        |i: usize| attempts[i + 1].start_ms - (attempts[i].start_ms + attempts[i].duration_ms);
    assert!(gap(0) >= 95.0, "first backoff {} ms, expected 100", gap(0));
    assert!(
        gap(1) >= 195.0,
        "second backoff {} ms, expected 200",
        gap(1)
    );
    assert!(gap(1) < 380.0, "second backoff {} ms, expected 200", gap(1));
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let record = run_flow(
        r#"
flow: perm
steps:
  - id: f
    plugin: fail
    config: {kind: permanent, message: nope}
    retry: {max_attempts: 5, initial_interval: 10ms}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("f", "permanent")
    );
    assert_eq!(error.message, "nope");
    let f = step(&record, "f");
    assert_eq!(f.status, StepStatus::Failed);
    assert_eq!(f.attempts.len(), 1);
}

#[tokio::test]
async fn non_retryable_kinds_are_not_retried() {
    let record = run_flow(
        r#"
flow: nonretry
steps:
  - id: f
    plugin: fail
    config: {kind: transient, message: flaky backend}
    retry: {max_attempts: 5, initial_interval: 10ms, non_retryable: [transient]}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Transient);
    assert_eq!(step(&record, "f").attempts.len(), 1);

    // The same without non_retryable: all 5 attempts.
    let record = run_flow(
        r#"
flow: retried
steps:
  - id: f
    plugin: fail
    config: {kind: transient, message: flaky backend}
    retry: {max_attempts: 5, initial_interval: 1ms, jitter: none}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(step(&record, "f").attempts.len(), 5);
}

#[tokio::test]
async fn circuit_breaker_opens_fails_fast_and_recovers() {
    // Breakers are shared by an executor's runs: this test has its own.
    let exec = Executor::new(host().clone());
    let failing = r#"
flow: cb
steps:
  - id: call
    plugin: flaky
    config: {fail_until: 1000}
    circuit_breaker: {failure_threshold: 2, reset_timeout: 300ms}
"#;
    let healthy = failing.replace("fail_until: 1000", "fail_until: 0");

    for _ in 0..2 {
        let record = run_flow_with(&exec, failing, json!({})).await;
        assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Transient);
        let call = step(&record, "call");
        assert_eq!(call.attempts.len(), 1);
        assert!(!call.breaker_open);
    }
    // Open: refused at once, the plugin is not called.
    let record = run_flow_with(&exec, &healthy, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::CircuitOpen);
    let call = step(&record, "call");
    assert!(call.breaker_open);
    assert!(call.attempts.is_empty(), "{:?}", call.attempts);
    assert_eq!(call.status, StepStatus::Failed);
    assert!(
        exec.breaker_states()
            .contains(&("flaky".to_string(), flowhost::executor::BreakerState::Open))
    );

    // After reset_timeout one probe passes; its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let record = run_flow_with(&exec, &healthy, json!({"ok": 1})).await;
    assert_eq!(output(&record), json!({"attempt": 1, "input": {"ok": 1}}));
    assert!(!step(&record, "call").breaker_open);
    assert!(exec.breaker_states().contains(&(
        "flaky".to_string(),
        flowhost::executor::BreakerState::Closed
    )));
    // Closed again: one failure does not open it.
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Transient);
    let record = run_flow_with(&exec, &healthy, json!({})).await;
    assert_eq!(record.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn half_open_probe_failure_reopens_the_breaker() {
    let exec = Executor::new(host().clone());
    let failing = r#"
flow: cb2
steps:
  - id: call
    plugin: flaky
    config: {fail_until: 1000}
    circuit_breaker: {failure_threshold: 1, reset_timeout: 200ms}
"#;
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Transient);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The probe is called, and fails.
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::Transient);
    assert_eq!(step(&record, "call").attempts.len(), 1);
    // Open again.
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::CircuitOpen);
    assert!(step(&record, "call").breaker_open);
}

#[tokio::test]
async fn fallback_recovers_a_failed_step() {
    let record = run_flow(
        r#"
flow: fb
steps:
  - id: main
    plugin: fail
    config: {kind: permanent, message: down}
    fallback:
      plugin: echo
      input: {from: fallback, why: "${error.kind}: ${error.message}", was: "${input.q}"}
  - id: next
    plugin: echo
"#,
        json!({"q": "?"}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!({"from": "fallback", "why": "permanent: down", "was": "?"})
    );
    let main = step(&record, "main");
    assert_eq!(main.status, StepStatus::Recovered);
    assert_eq!(main.error.as_ref().unwrap().kind, ErrorKind::Permanent);
    assert_eq!(main.attempts.len(), 1);
    let fb = main.fallback.as_ref().expect("the fallback is recorded");
    assert_eq!(fb.plugin, "echo");
    assert!(fb.version.is_some());
    assert!(fb.attempt.error.is_none());
    assert_eq!(step(&record, "next").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn fallback_without_input_gets_the_step_input() {
    let record = run_flow(
        r#"
flow: fb2
steps:
  - id: main
    plugin: fail
    input: {mapped: "${input.v}"}
    fallback: {plugin: echo}
"#,
        json!({"v": 5}),
    )
    .await;
    assert_eq!(output(&record), json!({"mapped": 5}));
}

#[tokio::test]
async fn a_breaker_opening_mid_retry_keeps_the_error_that_opened_it() {
    let exec = Executor::new(host().clone());
    let record = run_flow_with(
        &exec,
        r#"
flow: cb3
steps:
  - id: call
    plugin: fail
    config: {kind: transient, message: backend down}
    retry: {max_attempts: 4, initial_interval: 1ms, jitter: none}
    circuit_breaker: {failure_threshold: 2}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::CircuitOpen);
    assert!(
        error
            .message
            .contains("after attempt 2 failed: transient: backend down"),
        "{error:?}"
    );
    assert_eq!(error.causes.len(), 2, "{:?}", error.causes);
    assert!(
        error.causes[0].contains("circuit-open"),
        "{:?}",
        error.causes
    );
    assert_eq!(error.causes[1], "step call: transient: backend down");
    let call = step(&record, "call");
    assert!(call.breaker_open);
    assert_eq!(call.attempts.len(), 2, "{:?}", call.attempts);
}

#[tokio::test]
async fn a_step_without_a_breaker_is_refused_while_its_plugins_breaker_is_open() {
    let exec = Executor::new(host().clone());
    let record = run_flow_with(
        &exec,
        r#"
flow: shared
steps:
  - id: guarded
    plugin: flaky
    config: {fail_until: 1000}
    circuit_breaker: {failure_threshold: 1, reset_timeout: 60s}
    continue_on_error: true
  - id: plain
    plugin: flaky
    continue_on_error: true
  - id: rescued
    plugin: flaky
    fallback: {plugin: flaky, input: {rescued: true}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(step(&record, "guarded").attempts.len(), 1);
    // `plain` has no circuit_breaker, and a healthy call: refused all the same.
    let plain = step(&record, "plain");
    assert_eq!(plain.status, StepStatus::Continued);
    assert!(plain.breaker_open);
    assert!(plain.attempts.is_empty(), "{:?}", plain.attempts);
    assert_eq!(plain.error.as_ref().unwrap().kind, ErrorKind::CircuitOpen);
    // A fallback is not behind the breaker, even on the same plugin.
    assert_eq!(
        output(&record),
        json!({"attempt": 1, "input": {"rescued": true}})
    );
    assert_eq!(step(&record, "rescued").status, StepStatus::Recovered);
    assert_eq!(
        exec.breaker_states(),
        [("flaky".to_string(), BreakerState::Open)]
    );
}

#[tokio::test]
async fn failures_of_steps_without_a_breaker_count_toward_the_threshold() {
    let exec = Executor::new(host().clone());
    let plain_only = r#"
flow: plain
steps:
  - {id: a, plugin: flaky, config: {fail_until: 1000}, continue_on_error: true}
  - {id: b, plugin: flaky, config: {fail_until: 1000}, continue_on_error: true}
  - {id: c, plugin: flaky, config: {fail_until: 1000}, continue_on_error: true}
"#;
    // Steps without circuit_breaker never open it, however often they fail,
    // and a breaker only they used is not reported.
    let record = run_flow_with(&exec, plain_only, json!({})).await;
    assert_eq!(step(&record, "c").attempts.len(), 1);
    assert!(!step(&record, "c").breaker_open);
    assert!(
        exec.breaker_states().is_empty(),
        "{:?}",
        exec.breaker_states()
    );
    // Their three failures in a row, then a fourth by a step whose
    // threshold is 4: that one opens it.
    let record = run_flow_with(
        &exec,
        r#"
flow: guarded
steps:
  - {id: d, plugin: flaky, config: {fail_until: 1000}, circuit_breaker: {failure_threshold: 4}, continue_on_error: true}
  - {id: e, plugin: flaky}
"#,
        json!({}),
    )
    .await;
    assert_eq!(step(&record, "d").attempts.len(), 1);
    assert!(step(&record, "e").breaker_open);
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::CircuitOpen);
}

#[tokio::test]
async fn the_threshold_of_the_step_whose_call_failed_decides() {
    let exec = Executor::new(host().clone());
    let record = run_flow_with(
        &exec,
        r#"
flow: thresholds
steps:
  - {id: strict, plugin: flaky, config: {fail_until: 1000}, circuit_breaker: {failure_threshold: 2}, continue_on_error: true}
  - {id: lenient, plugin: flaky, config: {fail_until: 1000}, circuit_breaker: {failure_threshold: 3}, continue_on_error: true}
  - {id: strict_again, plugin: flaky, config: {fail_until: 1000}, circuit_breaker: {failure_threshold: 2}, continue_on_error: true}
  - {id: after, plugin: flaky, circuit_breaker: {failure_threshold: 3}}
"#,
        json!({}),
    )
    .await;
    let called = |path: &str| {
        let s = step(&record, path);
        (s.attempts.len(), s.breaker_open)
    };
    // Two failures in a row, the second `lenient`'s: under its threshold of 3
    // (the strict step's 2 does not count), the breaker stays closed.
    assert_eq!(called("lenient"), (1, false));
    // Three, the third `strict_again`'s: past its threshold of 2, it opens.
    assert_eq!(called("strict_again"), (1, false));
    assert_eq!(called("after"), (0, true));
    assert_eq!(record.error.as_ref().unwrap().step, "after");
}

#[tokio::test]
async fn a_fallback_sees_its_steps_id_and_attempt_one() {
    let flow = parse(
        r#"
flow: fbctx
steps:
  - id: main
    plugin: fail
    fallback: {plugin: emit, config: {topic: fb}}
  - id: retried
    plugin: fail
    config: {kind: transient}
    retry: {max_attempts: 3, initial_interval: 1ms}
    fallback: {plugin: flaky}
"#,
    );
    let events = Arc::new(Events::default());
    let sink: Arc<dyn EventSink> = events.clone();
    let options = RunOptions {
        events: Some(sink),
        ..RunOptions::default()
    };
    let plugins = crate::support::plugin_set(&flow).await;
    let record = executor().run(&flow, &plugins, json!({}), options).await;
    // `retried` failed on attempt 3; its fallback's call is its attempt 1.
    assert_eq!(
        output(&record),
        json!({"attempt": 1, "input": {"emitted": true}})
    );
    assert_eq!(step(&record, "retried").attempts.len(), 3);
    let events = events.0.lock().unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.step_id.as_str()).collect();
    assert_eq!(ids, ["main"]);
}
