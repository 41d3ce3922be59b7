//! The cap on the steps one run may start: a for_each whose items would
//! pass it fails before any item runs; nested composites that pass it fail
//! at the step that would; the record never holds more steps than the cap.

use std::time::{Duration, Instant};

use flowhost::executor::StepStatus;
use flowhost::{ErrorKind, RunOptions, RunRecord, RunStatus};
use serde_json::{Value, json};

use super::output;
use crate::support::{executor, parse, plugin_set, step};

/// Runs `yaml` on `input` with at most `max_steps` steps.
async fn run_capped(yaml: &str, input: Value, max_steps: usize) -> RunRecord {
    let flow = parse(yaml);
    let plugins = plugin_set(&flow).await;
    let options = RunOptions {
        max_steps,
        ..RunOptions::default()
    };
    executor().run(&flow, &plugins, input, options).await
}

const EACH: &str = r#"
flow: each
steps:
  - id: each
    for_each: "${input.items}"
    steps:
      - id: echo
        plugin: echo
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_past_the_cap_fails_before_any_item_runs() {
    let flow = parse(EACH);
    let plugins = plugin_set(&flow).await;
    let input = json!({"items": vec![1; 1_000_000]});
    let started = Instant::now();
    let run = executor().run(&flow, &plugins, input, RunOptions::default());
    // Today's cap is checked before any item; without it the items would run for minutes.
    let record = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run fails fast instead of running a million items");
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::TooManySteps);
    assert_eq!(error.step, "each");
    assert_eq!(
        error.message,
        "for_each over 1000000 items would start 1000000 steps (1 per item), past the cap \
         of 10000 steps a run may start (1 started already)"
    );
    // No item ran: the record holds the for_each step alone.
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["each"]);
    assert_eq!(step(&record, "each").status, StepStatus::Failed);
    // Rendering the list is the only work (debug build, generous bound).
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[tokio::test]
async fn a_for_each_within_the_cap_runs_every_item() {
    let record = run_capped(EACH, json!({"items": [1, 2, 3]}), 4).await;
    assert_eq!(output(&record), json!([1, 2, 3]));
    assert_eq!(record.steps.len(), 4);
    let record = run_capped(EACH, json!({"items": [1, 2, 3]}), 3).await;
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::TooManySteps);
    assert!(
        error.message.contains("would start 3 steps") && error.message.contains("cap of 3 steps"),
        "{}",
        error.message
    );
}

/// A parallel of two for_each branches whose items each run a switch:
/// 1 + 2 x (1 branch + 3 items x (switch + its step)) = 15 steps, none of
/// them over the cap on its own.
const NESTED: &str = r#"
flow: nested
steps:
  - id: fan
    parallel:
      - id: a
        for_each: "${input.items}"
        max_concurrency: 1
        steps:
          - id: pick
            switch:
              - default:
                  - id: echo
                    plugin: echo
      - id: b
        for_each: "${input.items}"
        max_concurrency: 1
        steps:
          - id: choose
            switch:
              - default:
                  - id: copy
                    plugin: echo
"#;

#[tokio::test]
async fn nested_composites_past_the_cap_fail_and_the_record_stays_within_it() {
    let input = json!({"items": [1, 2, 3]});
    let record = run_capped(NESTED, input.clone(), 15).await;
    assert_eq!(output(&record), json!({"a": [1, 2, 3], "b": [1, 2, 3]}));
    assert_eq!(record.steps.len(), 15);

    let record = run_capped(NESTED, input, 14).await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::TooManySteps);
    assert_eq!(
        error.message,
        "the run has started 14 steps, the cap of steps a run may start; this step would pass it"
    );
    assert!(error.step.starts_with("fan."), "{error:?}");
    assert_eq!(
        record.steps.len(),
        14,
        "the record holds no step past the cap"
    );
    assert!(
        error.causes[0].starts_with("parallel step fan failed"),
        "{:?}",
        error.causes
    );
}

#[tokio::test]
async fn continue_on_error_does_not_go_on_past_the_cap() {
    let record = run_capped(
        r#"
flow: cont
steps:
  - id: each
    continue_on_error: true
    for_each: "${input.items}"
    steps:
      - id: inner
        plugin: echo
        continue_on_error: true
  - id: after
    plugin: echo
"#,
        json!({"items": [1, 2, 3, 4]}),
        3,
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_ref().unwrap().kind, ErrorKind::TooManySteps);
    assert!(
        record.steps.iter().all(|s| s.path != "after"),
        "{:?}",
        record.steps
    );
}
