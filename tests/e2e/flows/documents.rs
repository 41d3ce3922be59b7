//! Step outputs that are not JSON, or JSON that cannot be read: where the run fails.

use flowhost::RunStatus;
use flowhost::executor::StepStatus;
use serde_json::json;

use crate::support::{run_flow, step};

#[tokio::test]
async fn a_step_returning_invalid_json_fails_where_it_ran() {
    let record = run_flow(
        "flow: bad\nsteps:\n  - {id: broken, plugin: not-json}\n  - {id: next, plugin: echo}\n",
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let err = record.error.unwrap();
    assert_eq!(
        (err.step.as_str(), err.kind.as_str()),
        ("broken", "permanent")
    );
    assert!(
        err.message.starts_with("the step returned invalid JSON"),
        "{}",
        err.message
    );
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["broken"], "the next step never saw the text");
}

#[tokio::test]
async fn json_too_deep_to_parse_passes_on_and_fails_only_a_read() {
    // Passed through (composed into a parallel step's output): the run succeeds.
    let record = run_flow(
        "flow: deep\nsteps:\n  - id: p\n    parallel:\n      - {id: d, plugin: unreadable-json, config: {shape: deep}}\n",
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let out = record.output.as_ref().unwrap().get();
    assert!(
        out.starts_with(r#"{"d":[[[["#) && out.len() == 200_006,
        "{}",
        &out[..20]
    );
    assert_eq!(record.output_value(), None, "serde_json cannot hold it");
    // Read by an expression: that step fails, naming what it read.
    let record = run_flow(
        r#"
flow: deep
steps:
  - {id: d, plugin: unreadable-json, config: {shape: deep}}
  - {id: read, plugin: echo, input: {n: "${size(steps.d.output)}"}}
"#,
        json!({}),
    )
    .await;
    let err = record.error.unwrap();
    assert_eq!(
        (err.step.as_str(), err.kind.as_str()),
        ("read", "expression")
    );
    assert_eq!(
        err.message,
        "expression `size(steps.d.output)`: cannot read `steps.d.output`: the JSON cannot be read: recursion limit exceeded at line 1 column 128"
    );
}

#[tokio::test]
async fn a_number_beyond_a_double_fails_only_the_expression_that_reads_it() {
    let record = run_flow(
        r#"
flow: big
steps:
  - {id: b, plugin: unreadable-json}
  - {id: passed, plugin: echo, input: {label: "not read"}}
  - {id: read, plugin: echo, input: "${steps.b.output.n}"}
"#,
        json!({}),
    )
    .await;
    let err = record.error.as_ref().unwrap();
    assert_eq!(
        (err.step.as_str(), err.kind.as_str()),
        ("read", "expression")
    );
    assert!(
        err.message.ends_with("cannot read `steps.b.output`: the JSON cannot be read: number out of range at line 1 column 11"),
        "{}",
        err.message
    );
    assert_eq!(step(&record, "passed").status, StepStatus::Succeeded);
}
