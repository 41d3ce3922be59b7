//! What an expression that fails at run time says: why a step it reads has
//! no output, and type errors written as the flow author writes CEL.

use flowhost::executor::StepStatus;
use flowhost::{ErrorKind, RunRecord, RunStatus};
use serde_json::json;

use super::output;
use crate::support::{run_flow, step};

/// The run's error: its step, kind and message.
fn failure(record: &RunRecord) -> (&str, ErrorKind, &str) {
    assert_eq!(record.status, RunStatus::Failed, "the run succeeded");
    let e = record.error.as_ref().expect("a failed run has an error");
    (e.step.as_str(), e.kind, e.message.as_str())
}

#[tokio::test]
async fn reading_a_skipped_step_says_it_was_skipped() {
    let record = run_flow(
        r#"
flow: skipped
steps:
  - id: b
    plugin: echo
    if: false
  - id: c
    plugin: echo
    input: "${steps.b.output.x}"
"#,
        json!({}),
    )
    .await;
    assert_eq!(step(&record, "b").status, StepStatus::Skipped);
    assert_eq!(
        failure(&record),
        (
            "c",
            ErrorKind::Expression,
            "expression `steps.b.output.x`: step `b` was skipped (its `if` was false), \
             so it has no output; `has(steps.b)` tells whether it has one"
        )
    );
}

#[tokio::test]
async fn reading_a_continued_step_says_it_failed_and_was_continued() {
    let record = run_flow(
        r#"
flow: continued
steps:
  - id: pre-check
    plugin: fail
    config: {kind: invalid-input, message: "no"}
    continue_on_error: true
  - id: c
    plugin: echo
    if: "${steps['pre-check'].output.ok}"
"#,
        json!({}),
    )
    .await;
    assert_eq!(step(&record, "pre-check").status, StepStatus::Continued);
    assert_eq!(
        failure(&record),
        (
            "c",
            ErrorKind::Expression,
            "expression `steps['pre-check'].output.ok`: step `pre-check` failed and was \
             continued (`continue_on_error`), so it has no output; \
             `'pre-check' in steps` tells whether it has one"
        )
    );
}

#[tokio::test]
async fn a_step_without_output_can_be_tested_for() {
    // The hint holds: a skipped step is absent from `steps`, not an error.
    let record = run_flow(
        r#"
flow: tested
steps:
  - id: b
    plugin: echo
    if: "${input.go}"
  - id: c
    plugin: echo
    input:
      has: "${has(steps.b)}"
      in: "${'b' in steps}"
      picked: "${has(steps.b) ? steps.b.output : 'none'}"
"#,
        json!({"go": false}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!({"has": false, "in": false, "picked": "none"})
    );
}

#[tokio::test]
async fn on_error_reading_the_failed_step_says_it_did_not_finish() {
    let record = run_flow(
        r#"
flow: unfinished
steps:
  - id: skip
    plugin: echo
    if: false
  - id: bad
    plugin: fail
    config: {kind: invalid-input, message: "no"}
on_error:
  plugin: echo
  input: {bad: "${steps.bad.output}", skip: "${steps.skip.output}"}
"#,
        json!({}),
    )
    .await;
    let handler = step(&record, "on_error");
    assert_eq!(handler.status, StepStatus::Failed);
    let error = handler.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Expression);
    assert_eq!(
        error.message,
        "expression `steps.bad.output`: step `bad` did not finish (it failed, or the run \
         stopped before it), so it has no output; `has(steps.bad)` tells whether it has one"
    );
}

#[tokio::test]
async fn on_error_reading_the_first_step_that_failed_says_it_did_not_finish() {
    let record = run_flow(
        r#"
flow: first
steps:
  - id: bad
    plugin: fail
    config: {kind: invalid-input, message: "no"}
on_error:
  plugin: echo
  input: "${steps.bad.output}"
"#,
        json!({}),
    )
    .await;
    let error = step(&record, "on_error").error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Expression);
    assert_eq!(
        error.message,
        "expression `steps.bad.output`: step `bad` did not finish (it failed, or the run \
         stopped before it), so it has no output; `has(steps.bad)` tells whether it has one"
    );
}

#[tokio::test]
async fn on_error_reading_a_skipped_step_says_it_was_skipped() {
    let record = run_flow(
        r#"
flow: unfinished
steps:
  - id: skip
    plugin: echo
    if: false
  - id: bad
    plugin: fail
    config: {kind: invalid-input, message: "no"}
on_error:
  plugin: echo
  input: "${steps.skip.output}"
"#,
        json!({}),
    )
    .await;
    let error = step(&record, "on_error").error.as_ref().unwrap();
    assert_eq!(
        error.message,
        "expression `steps.skip.output`: step `skip` was skipped (its `if` was false), \
         so it has no output; `has(steps.skip)` tells whether it has one"
    );
}

#[tokio::test]
async fn a_type_error_shows_the_values_as_cel_writes_them() {
    let record = run_flow(
        r#"
flow: types
steps:
  - id: total
    plugin: echo
    input: {sum: "${input.n + input.price}"}
"#,
        json!({"n": 5, "price": 2.5}),
    )
    .await;
    assert_eq!(
        failure(&record),
        (
            "total",
            ErrorKind::Expression,
            "expression `input.n + input.price`: `+` does not apply to an int and a double \
             (`5 + 2.5`); convert the int with `double(...)` (or the double with `int(...)`, \
             which truncates)"
        )
    );
}

#[tokio::test]
async fn a_long_value_in_a_type_error_is_cut_short() {
    let items: Vec<u32> = (0..1000).collect();
    let record = run_flow(
        r#"
flow: long
steps:
  - id: s
    plugin: echo
    input: "${input.items + 1}"
"#,
        json!({ "items": items }),
    )
    .await;
    let list = format!("{items:?}");
    let shown = format!("{}...", &list[..77]);
    assert_eq!(
        failure(&record),
        (
            "s",
            ErrorKind::Expression,
            format!(
                "expression `input.items + 1`: `+` does not apply to a list and an int \
                 (`{shown} + 1`)"
            )
            .as_str()
        )
    );
    let record = run_flow(
        r#"
flow: long
steps:
  - id: s
    plugin: echo
    input: "${input.text + 1}"
"#,
        json!({"text": "x".repeat(10_000)}),
    )
    .await;
    let shown = format!("'{}...", "x".repeat(76));
    assert_eq!(
        failure(&record).2,
        format!(
            "expression `input.text + 1`: `+` does not apply to a string and an int \
             (`{shown} + 1`); to join them as text, convert the int with `string(...)`"
        )
    );
}
