//! Composite steps: parallel branches, switch, for_each, and `if`.

use flowhost::executor::{StepRecord, StepStatus, StepType};
use serde_json::{Value, json};

use super::output;
use crate::support::{run_flow, step};

/// The attempt intervals `(start, end)` in ms, one per attempt of `steps`.
fn intervals<'a>(steps: impl IntoIterator<Item = &'a StepRecord>) -> Vec<(f64, f64)> {
    steps
        .into_iter()
        .flat_map(|s| s.attempts.iter())
        .map(|a| (a.start_ms, a.start_ms + a.duration_ms))
        .collect()
}

/// The most intervals open at one instant (touching ends do not overlap).
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut events: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    // Ends before starts at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut max) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        max = max.max(open);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_overlap() {
    let record = run_flow(
        r#"
flow: par
steps:
  - id: par
    parallel:
      - id: one
        plugin: sleep
        config: {ms: 300}
        input: {b: 1}
      - id: two
        plugin: sleep
        config: {ms: 300}
        input: {b: 2}
      - id: three
        plugin: sleep
        config: {ms: 300}
"#,
        json!({"b": 3}),
    )
    .await;
    assert_eq!(
        output(&record),
        json!({"one": {"b": 1}, "two": {"b": 2}, "three": {"b": 3}})
    );
    assert!(
        record.duration_ms < 700.0,
        "3 x 300 ms branches took {} ms: they did not overlap",
        record.duration_ms
    );
    let branches: Vec<_> = ["par.one", "par.two", "par.three"]
        .iter()
        .map(|p| step(&record, p))
        .collect();
    for b in &branches {
        assert_eq!(b.status, StepStatus::Succeeded);
        assert!(b.attempts[0].duration_ms >= 290.0, "{b:?}");
    }
    assert_eq!(max_overlap(&intervals(branches.iter().copied())), 3);
    assert_eq!(step(&record, "par").kind, StepType::Parallel);
    // The record keeps its words.
    let json = serde_json::to_value(&record).unwrap();
    let kinds: Vec<_> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["parallel", "plugin", "plugin", "plugin"]);
}

const SWITCH: &str = r#"
flow: sw
steps:
  - id: route
    switch:
      - when: "${input.n > 10}"
        steps:
          - id: big
            plugin: echo
            input: {size: big}
      - when: "input.n > 5"
        steps:
          - id: medium
            plugin: echo
            input: {size: medium}
          - id: medium2
            plugin: echo
            input: {size: "${steps.medium.output.size}-2"}
      - default:
          - id: small
            plugin: echo
            input: {size: small}
"#;

#[tokio::test]
async fn switch_takes_the_first_matching_case() {
    let record = run_flow(SWITCH, json!({"n": 50})).await;
    assert_eq!(output(&record), json!({"size": "big"}));
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["route", "route.big"]);

    let record = run_flow(SWITCH, json!({"n": 7})).await;
    assert_eq!(output(&record), json!({"size": "medium-2"}));
    let paths: Vec<_> = record.steps.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["route", "route.medium", "route.medium2"]);
}

#[tokio::test]
async fn switch_falls_back_to_default() {
    let record = run_flow(SWITCH, json!({"n": 1})).await;
    assert_eq!(output(&record), json!({"size": "small"}));
    assert_eq!(step(&record, "route.small").status, StepStatus::Succeeded);
    assert!(record.steps.iter().all(|s| !s.path.contains("big")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_keeps_order_and_bounds_concurrency() {
    let items: Vec<Value> = (0..8).map(|i| json!({"i": i})).collect();
    let record = run_flow(
        r#"
flow: fe
steps:
  - id: each
    for_each: "${input.items}"
    max_concurrency: 3
    steps:
      - id: work
        plugin: sleep
        config: {ms: 150}
      - id: tag
        plugin: echo
        input: {i: "${item.i}", index: "${index}", slept: "${steps.work.output}"}
"#,
        json!({"items": items}),
    )
    .await;
    let out = output(&record);
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 8);
    for (n, o) in out.iter().enumerate() {
        assert_eq!(o, &json!({"i": n, "index": n, "slept": {"i": n}}));
    }
    let work: Vec<_> = (0..8)
        .map(|i| step(&record, &format!("each[{i}].work")))
        .collect();
    let overlap = max_overlap(&intervals(work.iter().copied()));
    assert_eq!(
        overlap, 3,
        "max_concurrency 3: at most 3 items at once, and 3 reached"
    );
    // 8 items, 3 at a time, 150 ms each: at least 3 rounds.
    assert!(record.duration_ms >= 440.0, "{}", record.duration_ms);
}

#[tokio::test]
async fn if_false_skips_a_step() {
    let yaml = r#"
flow: cond
steps:
  - id: a
    plugin: echo
    input: {n: "${input.n}"}
  - id: maybe
    plugin: echo
    if: "${steps.a.output.n > 10}"
    input: {big: true}
"#;
    let record = run_flow(yaml, json!({"n": 1})).await;
    assert_eq!(output(&record), json!({"n": 1}));
    let maybe = step(&record, "maybe");
    assert_eq!(maybe.status, StepStatus::Skipped);
    assert!(maybe.attempts.is_empty());

    let record = run_flow(yaml, json!({"n": 11})).await;
    assert_eq!(output(&record), json!({"big": true}));
    assert_eq!(step(&record, "maybe").status, StepStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_item_cancels_the_items_in_flight() {
    let record = run_flow(
        r#"
flow: fe-fail
steps:
  - id: each
    for_each: [0, 1, 2, 3, 4]
    max_concurrency: 2
    steps:
      - id: wait
        if: "${index == 0}"
        plugin: sleep
        config: {ms: 2000}
      - id: boom
        if: "${index == 1}"
        plugin: fail
        config: {kind: permanent, message: "item 1 is bad"}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, flowhost::RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(error.step, "each[1].boom");
    // Item 0 is not waited for: its sleep is stopped.
    let each = step(&record, "each");
    assert_eq!(each.status, StepStatus::Failed);
    assert!(each.duration_ms < 1500.0, "{}", each.duration_ms);
    assert_eq!(step(&record, "each[0].wait").status, StepStatus::Cancelled);
    // No item starts after the failure.
    assert!(record.steps.iter().all(|s| !s.path.starts_with("each[2]")));
}
