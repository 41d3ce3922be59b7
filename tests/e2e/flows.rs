//! Flow patterns through the executor: data passing, parallel, switch,
//! for_each, retries, circuit breakers, fallbacks, deadlines, cancellation,
//! on_error, continue_on_error, `if`, step timeouts and the input schema.
//! Each test asserts on the output and on the run record.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowhost::executor::{StepRecord, StepStatus, StepType};
use flowhost::{Config, Event, EventSink, Executor, Host, RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{dist, executor, host, parse, poll_until, run_flow, run_flow_with, step};

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

fn output(record: &flowhost::RunRecord) -> Value {
    assert_eq!(
        record.status,
        RunStatus::Succeeded,
        "the run failed: {:?}",
        record.error
    );
    record
        .output_value()
        .expect("a succeeded run has an output")
}

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
    assert_eq!(attempts[0].error.as_ref().unwrap().kind, "transient");
    assert_eq!(attempts[1].error.as_ref().unwrap().kind, "transient");
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
    assert_eq!(record.error.as_ref().unwrap().kind, "transient");
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
        assert_eq!(record.error.as_ref().unwrap().kind, "transient");
        let call = step(&record, "call");
        assert_eq!(call.attempts.len(), 1);
        assert!(!call.breaker_open);
    }
    // Open: refused at once, the plugin is not called.
    let record = run_flow_with(&exec, &healthy, json!({})).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_ref().unwrap().kind, "circuit-open");
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
    assert_eq!(record.error.as_ref().unwrap().kind, "transient");
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
    assert_eq!(record.error.as_ref().unwrap().kind, "transient");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The probe is called, and fails.
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, "transient");
    assert_eq!(step(&record, "call").attempts.len(), 1);
    // Open again.
    let record = run_flow_with(&exec, failing, json!({})).await;
    assert_eq!(record.error.as_ref().unwrap().kind, "circuit-open");
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
    assert_eq!(main.error.as_ref().unwrap().kind, "permanent");
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
async fn flow_deadline_cuts_a_retry_loop() {
    let started = Instant::now();
    let record = run_flow(
        r#"
flow: deadline
timeout: 400ms
steps:
  - id: f
    plugin: fail
    config: {kind: transient, message: busy}
    retry:
      max_attempts: 50
      initial_interval: 100ms
      backoff_coefficient: 1
      jitter: none
"#,
        json!({}),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert!(
        ["transient", "deadline"].contains(&error.kind.as_str()),
        "{error:?}"
    );
    let attempts = step(&record, "f").attempts.len();
    assert!((2..10).contains(&attempts), "{attempts} attempts");
    assert!(record.duration_ms < 600.0, "{} ms", record.duration_ms);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_a_busy_sibling() {
    // A host of its own, to count its guest instances.
    let host = Host::new(Config::default()).expect("host");
    let flow = parse(
        r#"
flow: failfast
steps:
  - id: par
    parallel:
      - id: busy
        plugin: busy-loop
        timeout: 30s
        limits: {fuel: 1000000000000000}
      - id: boom
        plugin: sleep
        config: {ms: 100}
        input: {x: 1}
      - id: fail
        plugin: fail
        config: {kind: permanent, message: boom}
"#,
    );
    let files = flowhost::scan_dir(dist()).unwrap();
    let (plugins, errors) =
        flowhost::load_plugins(&host, &files, flow.plugin_names().into_iter()).await;
    assert!(errors.is_empty(), "{errors:?}");
    let exec = Executor::new(host.clone());
    let record = exec
        .run(&flow, &plugins, json!({}), RunOptions::default())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("par.fail", "permanent")
    );
    assert!(record.duration_ms < 1000.0, "{} ms", record.duration_ms);
    assert_eq!(step(&record, "par.busy").status, StepStatus::Cancelled);
    assert_eq!(step(&record, "par.boom").status, StepStatus::Cancelled);
    assert_eq!(step(&record, "par.fail").status, StepStatus::Failed);
    assert_eq!(step(&record, "par").status, StepStatus::Failed);
    // The busy guest really stopped.
    poll_until(
        Duration::from_millis(500),
        "no guest instance alive",
        || {
            let alive = host.instances_alive();
            async move { alive == 0 }
        },
    )
    .await;
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventSink for Events {
    fn emit(&self, event: Event) -> Result<(), String> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

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
    // Tagged with who emitted them: the flow, its run, and the handler's plugin.
    let tags: Vec<_> = events
        .iter()
        .map(|e| (e.flow.as_str(), e.run_id.len(), e.step_id.as_str()))
        .collect();
    assert_eq!(tags, [("oe2", 36, "emit"), ("oe3", 36, "emit")]);
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
    assert_eq!(optional.error.as_ref().unwrap().kind, "permanent");
    assert_eq!(step(&record, "last").status, StepStatus::Succeeded);
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

#[tokio::test]
async fn step_timeout_is_a_deadline_error() {
    let record = run_flow(
        r#"
flow: slow
steps:
  - id: s
    plugin: sleep
    config: {ms: 500}
    timeout: 100ms
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("s", "deadline")
    );
    let s = step(&record, "s");
    assert_eq!(s.attempts.len(), 1);
    assert!(s.attempts[0].duration_ms < 400.0, "{:?}", s.attempts[0]);
    assert!(record.duration_ms < 450.0, "{} ms", record.duration_ms);
}

#[tokio::test]
async fn composite_step_timeout_bounds_the_whole_step() {
    let record = run_flow(
        r#"
flow: slowpar
steps:
  - id: group
    timeout: 150ms
    parallel:
      - id: a
        plugin: sleep
        config: {ms: 1000}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("group", "deadline")
    );
    assert_eq!(step(&record, "group.a").status, StepStatus::Cancelled);
    assert!(record.duration_ms < 600.0, "{} ms", record.duration_ms);
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
