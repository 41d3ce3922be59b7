//! Data passing: inputs, outputs and expressions between steps, and the input schema.

use flowhost::RunStatus;
use flowhost::executor::StepStatus;
use serde_json::json;

use super::output;
use crate::support::run_flow;

#[tokio::test]
async fn sequential_steps_pass_data() {
    let record = run_flow(
        r#"
flow: seq
steps:
  - id: a
    plugin: echo
    input: {x: "${input.n}", label: "n=${input.n}"}
  - id: b
    plugin: echo
  - id: c
    plugin: echo
    input:
      from_a: "${steps.a.output.x + 1}"
      from_b: "${steps.b.output.label}"
      raw: "${input}"
"#,
        json!({"n": 41}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!({"from_a": 42, "from_b": "n=41", "raw": {"n": 41}})
    );
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["a", "b", "c"]);
    for s in &record.steps {
        assert_eq!(s.status, StepStatus::Succeeded);
        assert_eq!(s.plugin.as_deref(), Some("echo"));
        assert_eq!(s.attempts.len(), 1);
        assert!(s.version.is_some());
    }
    // In order: each step starts after the one before has finished.
    for w in record.steps.windows(2) {
        assert!(w[1].start_ms >= w[0].start_ms + w[0].duration_ms - 0.5);
    }
}

#[tokio::test]
async fn a_step_output_can_be_chosen_by_a_computed_name() {
    let record = run_flow(
        r#"
flow: pick
steps:
  - id: small
    plugin: echo
    input: {size: 1}
  - id: large
    plugin: echo
    input: {size: 100}
  - id: picked
    plugin: echo
    input: "${steps[input.which].output}"
"#,
        json!({"which": "large"}),
    )
    .await;
    assert_eq!(output(&record), json!({"size": 100}));
}

#[tokio::test]
async fn first_step_gets_the_flow_input_and_the_next_the_previous_output() {
    let record = run_flow(
        r#"
flow: chain
steps:
  - id: a
    plugin: flaky
    config: {fail_until: 0}
  - id: b
    plugin: flaky
    config: {fail_until: 0}
"#,
        json!({"k": "v"}),
    )
    .await;
    // flaky wraps its input: b saw a's output, a saw the flow input.
    assert_eq!(
        output(&record),
        json!({"attempt": 1, "input": {"attempt": 1, "input": {"k": "v"}}})
    );
}

#[tokio::test]
async fn whole_expression_keeps_its_json_type() {
    let record = run_flow(
        r#"
flow: types
steps:
  - id: each
    for_each: [1, 2]
    steps:
      - id: e
        plugin: echo
        input: {n: "${item}", s: "n=${item}", l: "${[item, 'x']}"}
"#,
        json!({}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!([
            {"n": 1, "s": "n=1", "l": [1, "x"]},
            {"n": 2, "s": "n=2", "l": [2, "x"]}
        ])
    );
}

#[tokio::test]
async fn an_input_reading_run_attempt_is_rendered_for_each_attempt() {
    let record = run_flow(
        r#"
flow: again
steps:
  - id: f
    plugin: flaky
    config: {fail_until: 3}
    retry: {max_attempts: 3, initial_interval: 1ms}
    input: {try: "${run.attempt}", label: "try ${run.attempt} of ${run.flow}", x: "${input.x}"}
"#,
        json!({"x": 1}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!({"attempt": 3, "input": {"try": 3, "label": "try 3 of again", "x": 1}})
    );
}

#[tokio::test]
async fn input_schema_rejects_bad_input() {
    let yaml = r#"
flow: schema
input_schema:
  type: object
  required: [amount]
  properties:
    amount: {type: number}
steps:
  - id: a
    plugin: echo
"#;
    let record = run_flow(yaml, json!({"amount": "ten"})).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("input", "invalid-input")
    );
    assert!(error.message.contains("input/amount"), "{}", error.message);
    assert!(record.steps.is_empty(), "no step ran: {:?}", record.steps);

    let record = run_flow(yaml, json!({"amount": 10})).await;
    assert_eq!(output(&record), json!({"amount": 10}));
}

#[tokio::test]
async fn a_flow_whose_steps_are_all_skipped_outputs_its_input() {
    let record = run_flow(
        r#"
flow: all-skipped
steps:
  - {id: a, plugin: echo, if: "${input.go}", input: {from: a}}
  - {id: b, plugin: echo, if: "${input.go}", input: {from: b}}
"#,
        json!({"go": false, "n": 1}),
    )
    .await;
    assert_eq!(output(&record), json!({"go": false, "n": 1}));
    let statuses: Vec<_> = record.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Skipped, StepStatus::Skipped]);
}

/// A switch on `input.n` whose only case is `n > 10` and has no `default`,
/// with its own `input` mapping; `next` gets its output, `read` shows both.
const SWITCH_NO_DEFAULT: &str = r#"
flow: no-default
steps:
  - id: route
    input: {mapped: "${input.n}"}
    switch:
      - when: "${input.n > 10}"
        steps:
          - {id: big, plugin: echo, if: "${input.n < 100}", input: {big: true}}
  - id: next
    plugin: echo
  - id: read
    plugin: echo
    input: {route: "${steps.route.output}", next: "${steps.next.output}"}
"#;

#[tokio::test]
async fn a_switch_with_no_matching_case_and_no_default_passes_its_input_on() {
    let record = run_flow(SWITCH_NO_DEFAULT, json!({"n": 1})).await;
    // Not `null`: the switch's input (its `input` mapping), as if every step
    // of a taken case had been skipped; `next` receives it.
    assert_eq!(
        output(&record),
        json!({"route": {"mapped": 1}, "next": {"mapped": 1}})
    );
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["route", "next", "read"]);
    assert_eq!(
        crate::support::step(&record, "route").status,
        StepStatus::Succeeded
    );
}

#[tokio::test]
async fn a_switch_whose_taken_case_skipped_every_step_passes_its_input_on() {
    let record = run_flow(SWITCH_NO_DEFAULT, json!({"n": 500})).await;
    assert_eq!(
        output(&record),
        json!({"route": {"mapped": 500}, "next": {"mapped": 500}})
    );
    assert_eq!(
        crate::support::step(&record, "route.big").status,
        StepStatus::Skipped
    );
    // The case taken and run: its step's output is the switch's.
    let record = run_flow(SWITCH_NO_DEFAULT, json!({"n": 50})).await;
    assert_eq!(
        output(&record),
        json!({"route": {"big": true}, "next": {"big": true}})
    );
}
