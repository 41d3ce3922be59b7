//! When a step fails for good: `on_error` and `continue_on_error`.

use std::sync::Arc;

use flowhost::ErrorKind;
use flowhost::executor::StepStatus;
use flowhost::{EventSink, RunOptions, RunStatus};
use serde_json::{Value, json};

use super::{Events, output};
use crate::support::{executor, parse, run_flow, step};

#[tokio::test]
async fn on_error_runs_with_the_error_record() {
    let record = run_flow(
        r#"
flow: oe
steps:
  - id: ok
    plugin: echo
  - id: bad
    plugin: fail
    config: {kind: invalid-input, message: "no such customer"}
on_error:
  plugin: echo
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_ref().unwrap().step, "bad");
    let handler = step(&record, "on_error");
    assert_eq!(handler.status, StepStatus::Succeeded);
    assert_eq!(handler.plugin.as_deref(), Some("echo"));
    assert_eq!(handler.attempts.len(), 1);
    assert!(handler.attempts[0].error.is_none());
    // It runs last.
    assert_eq!(record.steps.last().unwrap().path, "on_error");
}

#[tokio::test]
async fn on_error_input_is_the_error_record() {
    // `emit` publishes its input: the events show what on_error received.
    let flow = parse(
        r#"
flow: oe2
steps:
  - id: load
    plugin: echo
    input: {order: "${input.order}"}
  - id: charge
    plugin: fail
    config: {kind: permanent, message: "card declined"}
on_error:
  plugin: emit
  config: {topic: alerts}
"#,
    );
    let mapped = parse(
        r#"
flow: oe3
steps:
  - id: load
    plugin: echo
    input: {order: "${input.order}"}
  - id: charge
    plugin: fail
    config: {kind: permanent, message: "card declined"}
on_error:
  plugin: emit
  config: {topic: alerts}
  input: {at: "${error.step}", order: "${steps.load.output.order}", flow: "${run.flow}"}
"#,
    );
    let events = Arc::new(Events::default());
    let sink: Arc<dyn EventSink> = events.clone();
    let options = RunOptions {
        events: Some(sink),
        ..RunOptions::default()
    };
    for f in [&flow, &mapped] {
        let plugins = crate::support::plugin_set(f).await;
        let record = executor()
            .run(f, &plugins, json!({"order": "O-1"}), options.clone())
            .await;
        assert_eq!(record.status, RunStatus::Failed);
        assert_eq!(step(&record, "on_error").status, StepStatus::Succeeded);
    }
    let events = events.0.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].topic, "alerts");
    // Tagged with who emitted them: the flow, its run, and the handler's
    // step id, `on_error` (its path in the record).
    let tags: Vec<_> = events
        .iter()
        .map(|e| (e.flow.as_str(), e.run_id.len(), e.step_id.as_str()))
        .collect();
    assert_eq!(tags, [("oe2", 36, "on_error"), ("oe3", 36, "on_error")]);
    let first: Value = serde_json::from_str(events[0].payload.get()).unwrap();
    assert_eq!(first["step"], "charge");
    assert_eq!(first["kind"], "permanent");
    assert_eq!(first["message"], "card declined");
    assert!(first["causes"].as_array().is_some_and(|c| !c.is_empty()));
    let second: Value = serde_json::from_str(events[1].payload.get()).unwrap();
    assert_eq!(
        second,
        json!({"at": "charge", "order": "O-1", "flow": "oe3"})
    );
}

#[tokio::test]
async fn continue_on_error_goes_on() {
    let record = run_flow(
        r#"
flow: coe
steps:
  - id: first
    plugin: echo
    input: {v: 1}
  - id: optional
    plugin: fail
    config: {kind: permanent, message: ignored}
    continue_on_error: true
  - id: last
    plugin: echo
"#,
        json!({}),
    )
    .await;
    // `last` got `first`'s output: the continued step has no output.
    assert_eq!(output(&record), json!({"v": 1}));
    let optional = step(&record, "optional");
    assert_eq!(optional.status, StepStatus::Continued);
    assert_eq!(optional.error.as_ref().unwrap().kind, ErrorKind::Permanent);
    assert_eq!(step(&record, "last").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn on_error_runs_after_the_flow_timeout() {
    // The flow's deadline has passed when the handler runs: it runs under
    // the host's default limits, not in what is left of the deadline (1ms).
    let record = run_flow(
        r#"
flow: late
timeout: 300ms
steps:
  - id: slow
    plugin: sleep
    config: {ms: 2000}
on_error:
  plugin: sleep
  config: {ms: 200}
  input: {kind: "${error.kind}"}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Deadline);
    assert_eq!(error.step, "slow");
    let handler = step(&record, "on_error");
    // It took its 200 ms, well past the flow's deadline.
    assert_eq!(handler.status, StepStatus::Succeeded, "{handler:?}");
    assert!(handler.attempts[0].error.is_none());
    assert!(handler.attempts[0].duration_ms >= 190.0, "{handler:?}");
}
