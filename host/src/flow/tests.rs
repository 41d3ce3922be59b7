//! Unit tests for flows: parsing, validation messages, expressions, retries.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::ErrorKind;

const KNOWN: &[&str] = &[
    "a",
    "b",
    "validate-order",
    "notify",
    "fetch-user",
    "fetch-stats",
    "alert",
    "cached-price",
    "price-line",
];

fn known(name: &str) -> bool {
    KNOWN.contains(&name)
}

fn parse(text: &str) -> Result<Flow, Vec<FlowError>> {
    parse_flow(Path::new("f.yaml"), text, Some(&known))
}

/// The errors of an invalid flow, as displayed.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors, the flow parsed"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The one error of an invalid flow.
fn error(text: &str) -> String {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

fn ok(text: &str) -> Flow {
    match parse(text) {
        Ok(f) => f,
        Err(e) => panic!(
            "expected the flow to parse: {:#?}",
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        ),
    }
}

const EXAMPLE: &str = r#"
flow: orders
timeout: 30s
input_schema: {type: object, required: [amount], properties: {amount: {type: number}}}
triggers: [{event: "order.*"}]
concurrency: {limit: 4}
steps:
  - id: validate
    plugin: validate-order
    input: "${input}"
    config: {strict: true}
    timeout: 500ms
    retry: {max_attempts: 4, initial_interval: 50ms, backoff_coefficient: 2.0,
            max_interval: 2s, jitter: full, non_retryable: [permanent, invalid-input], retry_on: [trap]}
    circuit_breaker: {failure_threshold: 5, reset_timeout: 10s}
    fallback: {plugin: cached-price, input: "${input}", config: {ttl: 5}}
    if: "${input.amount > 0}"
    continue_on_error: false
    allow: {dirs: [{host: ./data, guest: /data, mode: ro}], env: [TZ], http: [api.example.com]}
    limits: {fuel: 100000000, memory: 64MiB}
  - id: enrich
    parallel:
      - {id: user, plugin: fetch-user}
      - {id: stats, plugin: fetch-stats, input: "${steps.validate.output.customer}"}
    fail_fast: false
  - id: route
    switch:
      - when: "${steps.validate.output.priority == 'high'}"
        steps:
          - {id: fast, plugin: a}
          - {id: fast2, plugin: b, input: "${steps.fast.output}"}
      - default:
          - {id: slow, plugin: b}
  - id: lines
    for_each: "${input.items}"
    max_concurrency: 8
    steps:
      - {id: price, plugin: price-line, input: {item: "${item}", at: "${index}"}}
      - {id: check, plugin: a, input: "${steps.price.output}"}
  - id: notify
    plugin: notify
    input: {order: "${steps.validate.output}", total: "${steps.lines.output}"}
on_error: {plugin: alert, config: {channel: ops}}
"#;

#[test]
fn the_full_example_parses() {
    let flow = ok(EXAMPLE);
    assert_eq!(flow.name, "orders");
    assert_eq!(flow.timeout, Some(Duration::from_secs(30)));
    assert_eq!(flow.concurrency, Some(4));
    assert!(flow.triggered_by("order.created"));
    assert!(!flow.triggered_by("user.created"));
    assert_eq!(flow.steps.len(), 5);

    let validate = &flow.steps[0];
    assert_eq!(validate.id, "validate");
    assert_eq!(validate.pos, Pos { line: 8, column: 5 });
    assert_eq!(validate.timeout, Some(Duration::from_millis(500)));
    let p = validate.plugin().unwrap();
    assert_eq!(p.plugin, "validate-order");
    assert_eq!(p.config, json!({"strict": true}));
    assert_eq!(p.retry.max_attempts, 4);
    assert_eq!(p.retry.initial_interval, Duration::from_millis(50));
    assert_eq!(p.retry.max_interval, Duration::from_secs(2));
    assert_eq!(p.retry.jitter, Jitter::Full);
    assert_eq!(p.retry.non_retryable, ["permanent", "invalid-input"]);
    assert_eq!(p.retry.retry_on, Some(vec![ErrorKind::Trap]));
    assert_eq!(
        p.circuit_breaker,
        Some(CircuitBreaker {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(10)
        })
    );
    let fallback = p.fallback.as_ref().unwrap();
    assert_eq!(fallback.plugin, "cached-price");
    assert_eq!(fallback.config, json!({"ttl": 5}));
    assert_eq!(p.grants.dirs.len(), 1);
    assert_eq!(p.grants.dirs[0].host, Path::new("./data"));
    assert_eq!(p.grants.dirs[0].guest.as_deref(), Some("/data"));
    assert_eq!(p.grants.dirs[0].mode, crate::DirMode::Ro);
    assert_eq!(p.grants.env, ["TZ"]);
    assert_eq!(p.grants.http, ["api.example.com"]);
    assert_eq!(p.limits.fuel, Some(100_000_000));
    assert_eq!(p.limits.max_memory, Some(64 << 20));
    let limits = p.limits.apply(&crate::Limits::default(), validate.timeout);
    assert_eq!(limits.fuel, 100_000_000);
    assert_eq!(limits.max_memory, 64 << 20);
    assert_eq!(limits.timeout, Duration::from_millis(500));
    assert_eq!(limits.max_output, crate::Limits::default().max_output);
    let cond = validate.condition.as_ref().unwrap();
    assert!(cond.eval_bool(&json!({"input": {"amount": 3}})).unwrap());
    assert!(!cond.eval_bool(&json!({"input": {"amount": 0}})).unwrap());
    assert!(cond.eval_bool(&json!({"input": {"amount": 0.5}})).unwrap());

    let StepKind::Parallel(par) = &flow.steps[1].kind else {
        panic!("a parallel step")
    };
    assert!(!par.fail_fast);
    assert_eq!(par.branches.len(), 2);
    assert_eq!(par.branches[1].id, "stats");

    let StepKind::Switch(sw) = &flow.steps[2].kind else {
        panic!("a switch step")
    };
    assert_eq!(sw.cases.len(), 1);
    assert_eq!(sw.cases[0].steps.len(), 2);
    assert_eq!(sw.default.as_ref().unwrap()[0].id, "slow");
    let scope = json!({"steps": {"validate": {"output": {"priority": "high"}}}});
    assert!(sw.cases[0].when.eval_bool(&scope).unwrap());

    let StepKind::ForEach(each) = &flow.steps[3].kind else {
        panic!("a for_each step")
    };
    assert_eq!(each.max_concurrency, 8);
    assert_eq!(
        each.items
            .render(&json!({"input": {"items": [1, 2]}}))
            .unwrap(),
        json!([1, 2])
    );
    let price_input = each.steps[0].input.as_ref().unwrap();
    assert_eq!(
        price_input.render(&json!({"item": 2, "index": 1})).unwrap(),
        json!({"item": 2, "at": 1})
    );

    let notify = &flow.steps[4];
    assert_eq!(
        notify.input.as_ref().unwrap().step_refs(),
        ["lines", "validate"]
    );
    assert_eq!(flow.on_error.as_ref().unwrap().plugin, "alert");

    let ids: Vec<&str> = flow.all_steps().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "validate", "enrich", "user", "stats", "route", "fast", "fast2", "slow", "lines",
            "price", "check", "notify"
        ]
    );
    let names: Vec<&str> = flow.plugin_names().into_iter().collect();
    assert_eq!(
        names,
        [
            "a",
            "alert",
            "b",
            "cached-price",
            "fetch-stats",
            "fetch-user",
            "notify",
            "price-line",
            "validate-order"
        ]
    );
    assert!(flow.step("fast2").is_some());

    assert_eq!(flow.check_input(&json!({"amount": 1})), Ok(()));
    assert_eq!(
        flow.check_input(&json!({"amount": "x"})),
        Err(r#"input/amount: "x" is not of type "number""#.to_string())
    );
    assert_eq!(
        flow.check_input(&json!({})),
        Err(r#"input: "amount" is a required property"#.to_string())
    );
}

#[test]
fn defaults() {
    let flow = ok(
        "flow: f\nsteps:\n  - id: s\n    plugin: a\n  - id: t\n    plugin: a\n    retry: {}\n  - id: p\n    parallel: [{id: q, plugin: a}]\n  - id: e\n    for_each: [1, 2]\n    steps: [{id: x, plugin: a}]\n",
    );
    let s = flow.steps[0].plugin().unwrap();
    assert_eq!(s.retry, RetryPolicy::default());
    assert_eq!(s.retry.max_attempts, 1);
    assert_eq!(s.config, serde_json::Value::Null);
    assert!(flow.steps[0].input.is_none());
    assert!(!flow.steps[0].continue_on_error);
    let t = flow.steps[1].plugin().unwrap();
    assert_eq!(t.retry.max_attempts, 3);
    assert_eq!(t.retry.initial_interval, Duration::from_millis(100));
    assert_eq!(t.retry.backoff_coefficient, 2.0);
    assert_eq!(t.retry.max_interval, Duration::from_secs(10));
    assert_eq!(t.retry.jitter, Jitter::Full);
    let StepKind::Parallel(p) = &flow.steps[2].kind else {
        panic!()
    };
    assert!(p.fail_fast);
    let StepKind::ForEach(e) = &flow.steps[3].kind else {
        panic!()
    };
    assert_eq!(e.max_concurrency, 16);
    assert!(e.items.is_constant());
    assert!(flow.input_schema.is_none());
    assert_eq!(flow.check_input(&json!("anything")), Ok(()));
}

#[test]
fn flows_and_templates_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Flow>();
    check::<Step>();
    check::<Template>();
    check::<Condition>();
    check::<FlowError>();
}

// ---- validation messages, one per class ----

#[test]
fn unknown_plugin() {
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: nope\n"),
        "f.yaml:4:13: unknown plugin `nope`"
    );
    // Fallbacks and on_error are checked too.
    assert_eq!(
        errors(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    fallback: {plugin: gone}\non_error: {plugin: missing}\n"
        ),
        [
            "f.yaml:5:24: unknown plugin `gone`",
            "f.yaml:6:20: unknown plugin `missing`"
        ]
    );
    // Without a plugin check, any name goes.
    let flow = parse_flow(
        Path::new("f.yaml"),
        "flow: f\nsteps:\n  - id: s\n    plugin: nope\n",
        None,
    )
    .unwrap();
    assert_eq!(
        flow.plugin_names().into_iter().collect::<Vec<_>>(),
        ["nope"]
    );
}

#[test]
fn duplicate_step_id() {
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n  - id: p\n    parallel:\n      - id: s\n        plugin: b\n"
        ),
        "f.yaml:7:13: duplicate step id `s` (first defined at line 3, column 9)"
    );
}

#[test]
fn reference_to_a_later_or_unknown_step() {
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${steps.t.output}\"\n  - id: t\n    plugin: a\n"
        ),
        "f.yaml:5:12: expression `steps.t.output` refers to step `t`, which has not run yet at this point"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    if: \"${steps.nope.output.ok}\"\n"),
        "f.yaml:5:9: expression `steps.nope.output.ok` refers to unknown step `nope`"
    );
    // A step cannot read itself, nor a sibling parallel branch.
    assert_eq!(
        errors(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${steps.s.output}\"\n  - id: p\n    parallel:\n      - {id: x, plugin: a}\n      - {id: y, plugin: a, input: \"${steps.x.output}\"}\n"
        ),
        [
            "f.yaml:5:12: expression `steps.s.output` refers to step `s`, which has not run yet at this point",
            "f.yaml:9:35: expression `steps.x.output` refers to step `x`, which has not run yet at this point"
        ]
    );
    // Steps nested in an earlier composite step are not visible after it.
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: p\n    parallel: [{id: x, plugin: a}]\n  - id: s\n    plugin: a\n    input: \"${steps.x.output}\"\n"
        ),
        "f.yaml:7:12: expression `steps.x.output` refers to step `x`, which has not run yet at this point"
    );
    // Ids with `-` are read by index.
    ok(
        "flow: f\nsteps:\n  - id: get-user\n    plugin: a\n  - id: s\n    plugin: a\n    input: \"${steps['get-user'].output}\"\n",
    );
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${steps['get-user'].output}\"\n"
        ),
        "f.yaml:5:12: expression `steps['get-user'].output` refers to unknown step `get-user`"
    );
}

#[test]
fn nested_steps_see_enclosing_ones() {
    ok(r#"
flow: f
steps:
  - id: first
    plugin: a
  - id: each
    for_each: "${steps.first.output}"
    steps:
      - id: inner
        plugin: a
        input: {x: "${steps.first.output}", i: "${item}", n: "${index}"}
      - id: sw
        switch:
          - when: "${steps.inner.output.ok && item > 0}"
            steps:
              - {id: deep, plugin: b, input: "${steps.inner.output}"}
              - {id: deeper, plugin: b, input: "${[steps.deep.output, steps.first.output]}"}
          - default:
              - {id: other, plugin: b, input: "${steps.inner.output}"}
"#);
}

#[test]
fn unknown_variable() {
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${item}\"\n"),
        "f.yaml:5:12: unknown variable `item` in expression `item`; available here: input, steps, run"
    );
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: e\n    for_each: [1]\n    steps:\n      - {id: s, plugin: a, input: \"${foo.bar}\"}\n"
        ),
        "f.yaml:6:35: unknown variable `foo` in expression `foo.bar`; available here: input, steps, run, item, index"
    );
    // Macro variables, type names and extension namespaces are not variables.
    ok(
        "flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${input.xs.map(x, x * 2).filter(y, y > 1).size() + math.greatest(1, 2)}\"\n    if: \"${type(input) == map}\"\n",
    );
    // The error record is available in fallbacks and on_error only.
    ok(
        "flow: f\nsteps:\n  - id: s\n    plugin: a\n    fallback: {plugin: b, input: \"${error.message}\"}\non_error: {plugin: alert, input: {e: \"${error}\", s: \"${steps.s.output}\"}}\n",
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        error("flow: f\ntimeout: 5 parsecs\nsteps:\n  - id: s\n    plugin: a\n"),
        "f.yaml:2:10: invalid duration `5 parsecs` for `timeout`: expected a number and a unit, such as 500ms, 2s or 1m"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {initial_interval: 10}\n"),
        "f.yaml:5:31: invalid duration `10` for `initial_interval`: expected a number and a unit, such as 500ms, 2s or 1m"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    timeout: 0s\n"),
        "f.yaml:5:14: `timeout` must be greater than zero"
    );
}

#[test]
fn bad_size() {
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    limits: {memory: lots}\n"),
        "f.yaml:5:22: invalid size `lots` for `memory`: expected a number of bytes, or a number and a unit such as 512KiB, 64MiB or 1GB"
    );
    let flow = ok("flow: f\nsteps:\n  - id: s\n    plugin: a\n    limits: {memory: 1048576}\n");
    assert_eq!(
        flow.steps[0].plugin().unwrap().limits.max_memory,
        Some(1 << 20)
    );
}

#[test]
fn expression_syntax_error() {
    let e = error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: \"${input. +}\"\n");
    assert!(
        e.starts_with("f.yaml:5:12: invalid expression `input. +`: "),
        "{e}"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    input: {x: \"a ${input.x\"}\n"),
        "f.yaml:5:16: invalid expression `input.x`: unterminated `${`: no closing `}`"
    );
    let e = error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    if: \"${input.x ==}\"\n");
    assert!(
        e.starts_with("f.yaml:5:9: invalid expression `input.x ==`: Syntax error: "),
        "{e}"
    );
    assert!(e.ends_with(" (at column 11 of the expression)"), "{e}");
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    if: \"x is ${input.x}\"\n"),
        "f.yaml:5:9: invalid expression `x is ${input.x}`: a condition must be one `${...}` expression, with no text around it"
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        error("flow: f\nname: x\nsteps:\n  - id: s\n    plugin: a\n"),
        "f.yaml:2:1: unknown field `name` in the flow; allowed fields: flow, timeout, input_schema, triggers, concurrency, steps, on_error"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retries: 3\n"),
        "f.yaml:5:5: unknown field `retries` in step `s` (a plugin step); allowed fields: id, input, if, timeout, continue_on_error, plugin, config, retry, circuit_breaker, fallback, allow, limits"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {attempts: 3}\n"),
        "f.yaml:5:13: unknown field `attempts` in `retry`; allowed fields: max_attempts, initial_interval, backoff_coefficient, max_interval, jitter, non_retryable, retry_on"
    );
    // Fields of another kind of step are unknown too.
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: p\n    parallel: [{id: x, plugin: a}]\n    max_concurrency: 2\n"
        ),
        "f.yaml:5:5: unknown field `max_concurrency` in step `p` (a parallel step); allowed fields: id, input, if, timeout, continue_on_error, parallel, fail_fast"
    );
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    allow: {dirs: [{host: /x, path: /y}]}\n"
        ),
        "f.yaml:5:31: unknown field `path` in a directory grant; allowed fields: host, guest, mode"
    );
}

#[test]
fn missing_required_field() {
    assert_eq!(
        error("steps:\n  - id: s\n    plugin: a\n"),
        "f.yaml:1:1: missing required field `flow` in the flow"
    );
    assert_eq!(
        error("flow: f\n"),
        "f.yaml:1:1: missing required field `steps` in the flow"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - plugin: a\n"),
        "f.yaml:3:5: missing required field `id` in a step"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: e\n    for_each: [1]\n"),
        "f.yaml:3:5: missing required field `steps` in step `e`"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    fallback: {config: 1}\n"),
        "f.yaml:5:15: missing required field `plugin` in `fallback`"
    );
}

#[test]
fn step_kind_none_or_several() {
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    input: 1\n"),
        "f.yaml:3:5: step `s` must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found none"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    parallel: [{id: x, plugin: a}]\n"),
        "f.yaml:5:5: step `s` must have exactly one of `plugin`, `parallel`, `switch` or `for_each`; found `plugin` and `parallel`"
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {max_attempts: \"x\"}\n"),
        "f.yaml:5:27: `max_attempts` must be an integer, found a string"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {max_attempts: 0}\n"),
        "f.yaml:5:27: `max_attempts` must be at least 1"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {backoff_coefficient: 0.5}\n"),
        "f.yaml:5:34: `backoff_coefficient` must be at least 1.0"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {jitter: some}\n"),
        "f.yaml:5:21: invalid jitter `some`: expected none, full or equal"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: {retry_on: [oops]}\n"),
        "f.yaml:5:24: unknown error kind `oops` in `retry_on`; expected one of: transient, permanent, invalid-input, trap, fuel, deadline, memory, output-too-large, host, circuit-open"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: s\n    plugin: a\n    continue_on_error: yes\n"),
        "f.yaml:5:24: `continue_on_error` must be a boolean, found a string"
    );
    assert_eq!(
        error("flow: f\nsteps: {id: s}\n"),
        "f.yaml:2:8: `steps` must be a list, found a mapping"
    );
    assert_eq!(
        error("flow: [f]\nsteps:\n  - id: s\n    plugin: a\n"),
        "f.yaml:1:7: `flow` must be a string, found a list"
    );
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: s\n    plugin: a\n    allow: {dirs: [{host: /x, mode: wr}]}\n"
        ),
        "f.yaml:5:37: invalid mode `wr`: expected ro or rw"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: 'a b'\n    plugin: a\n"),
        "f.yaml:3:9: invalid step id `a b`: use letters, digits, `_` and `-`, starting with a letter or `_`"
    );
    assert_eq!(
        error("flow: f\nsteps: []\n"),
        "f.yaml:2:8: `steps` must not be empty"
    );
    assert_eq!(
        error("- 1\n"),
        "f.yaml:1:1: the flow must be a mapping, found a list"
    );
}

#[test]
fn switch_default_must_be_last() {
    assert_eq!(
        error(
            "flow: f\nsteps:\n  - id: r\n    switch:\n      - default: [{id: x, plugin: a}]\n      - when: \"${true}\"\n        steps: [{id: y, plugin: a}]\n"
        ),
        "f.yaml:5:9: `default` must be the last case of a switch"
    );
    assert_eq!(
        error("flow: f\nsteps:\n  - id: r\n    switch:\n      - when: \"${true}\"\n"),
        "f.yaml:5:9: missing required field `steps` in a switch case"
    );
}

#[test]
fn invalid_input_schema() {
    assert_eq!(
        error(
            "flow: f\ninput_schema:\n  type: object\n  properties:\n    n: {type: nonsense}\nsteps:\n  - id: s\n    plugin: a\n"
        ),
        "f.yaml:5:15: invalid `input_schema` at /properties/n/type: \"nonsense\" is not valid under any of the schemas listed in the 'anyOf' keyword"
    );
    assert_eq!(
        InputSchema::compile(&json!({"minimum": "x"})).unwrap_err(),
        "at /minimum: \"x\" is not of type \"number\""
    );
}

#[test]
fn duplicate_keys_and_yaml_syntax() {
    assert_eq!(
        error("flow: f\nflow: g\nsteps:\n  - id: s\n    plugin: a\n"),
        "f.yaml:2:1: duplicate key `flow` (first at line 1, column 1)"
    );
    let e = error("flow: f\nsteps: [\n");
    assert!(e.starts_with("f.yaml:"), "{e}");
    assert!(e.contains("YAML syntax error"), "{e}");
    assert_eq!(error(""), "f.yaml:1:1: the flow file is empty");
}

#[test]
fn all_errors_are_reported_in_order() {
    let e = errors(
        "flow: f\ntimeout: soon\nsteps:\n  - id: s\n    plugin: nope\n    bogus: 1\n  - id: s\n    plugin: a\n    limits: {memory: big}\n",
    );
    assert_eq!(
        e,
        [
            "f.yaml:2:10: invalid duration `soon` for `timeout`: expected a number and a unit, such as 500ms, 2s or 1m",
            "f.yaml:5:13: unknown plugin `nope`",
            "f.yaml:6:5: unknown field `bogus` in step `s` (a plugin step); allowed fields: id, input, if, timeout, continue_on_error, plugin, config, retry, circuit_breaker, fallback, allow, limits",
            "f.yaml:7:9: duplicate step id `s` (first defined at line 4, column 9)",
            "f.yaml:9:22: invalid size `big` for `memory`: expected a number of bytes, or a number and a unit such as 512KiB, 64MiB or 1GB",
        ]
    );
}

// ---- JSON ----

#[test]
fn json_flows() {
    let text = r#"{
  "flow": "j",
  "steps": [
    {"id": "s", "plugin": "a", "input": {"n": "${input.n}"}, "retry": {"max_attempts": 2}},
    {"id": "t", "plugin": "b", "input": "${steps.s.output}"}
  ]
}"#;
    let flow = parse_flow(Path::new("f.json"), text, Some(&known)).unwrap();
    assert_eq!(flow.steps.len(), 2);
    assert_eq!(flow.steps[0].pos, Pos { line: 4, column: 5 });
    assert_eq!(flow.steps[0].plugin().unwrap().retry.max_attempts, 2);
    // JSON content in a file without the extension.
    let flow = parse_flow(Path::new("flow.txt"), text, Some(&known)).unwrap();
    assert_eq!(flow.name, "j");

    let errs = parse_flow(
        Path::new("f.json"),
        "{\n  \"flow\": \"j\",\n  \"steps\": [{\"id\": \"s\", \"plugin\": \"zz\", \"tmeout\": \"1s\"}]\n}",
        Some(&known),
    )
    .unwrap_err();
    let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        [
            "f.json:3:35: unknown plugin `zz`",
            "f.json:3:41: unknown field `tmeout` in step `s` (a plugin step); allowed fields: id, input, if, timeout, continue_on_error, plugin, config, retry, circuit_breaker, fallback, allow, limits"
        ]
    );

    let errs = parse_flow(Path::new("f.json"), "{\"flow\": \"j\",}", None).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "f.json:1:14: JSON syntax error: trailing comma"
    );
}

// ---- expressions ----

#[test]
fn whole_expression_keeps_its_type() {
    let t = Template::compile(&json!("${item}")).unwrap();
    assert_eq!(t.render(&json!({"item": 1})).unwrap(), json!(1));
    assert_eq!(t.render(&json!({"item": 2.5})).unwrap(), json!(2.5));
    assert_eq!(
        t.render(&json!({"item": [1, "x"]})).unwrap(),
        json!([1, "x"])
    );
    assert_eq!(
        t.render(&json!({"item": {"a": null}})).unwrap(),
        json!({"a": null})
    );
    assert_eq!(t.render(&json!({"item": true})).unwrap(), json!(true));
    let t = Template::compile(&json!("${ input.n * 2 }")).unwrap();
    assert_eq!(t.render(&json!({"input": {"n": 21}})).unwrap(), json!(42));
    let t = Template::compile(&json!("${ {'a': [input.n, 'x']} }")).unwrap();
    assert_eq!(
        t.render(&json!({"input": {"n": 1}})).unwrap(),
        json!({"a": [1, "x"]})
    );
}

#[test]
fn interpolation_in_longer_strings() {
    let t = Template::compile(&json!({
        "s": "id=${input.id}, n=${input.n}, o=${input.o}, null=${input.z}",
        "list": ["${input.n}", "n: ${input.n}", 7, null],
        "lit": "no expr",
        "esc": "cost $${input.n}",
    }))
    .unwrap();
    let out = t
        .render(&json!({"input": {"id": "ab", "n": 3, "o": {"k": [1, "v"]}, "z": null}}))
        .unwrap();
    assert_eq!(
        out,
        json!({
            "s": "id=ab, n=3, o={\"k\":[1,\"v\"]}, null=null",
            "list": [3, "n: 3", 7, null],
            "lit": "no expr",
            "esc": "cost ${input.n}",
        })
    );
    let constant = Template::compile(&json!({"a": [1, "b"]})).unwrap();
    assert!(constant.is_constant());
    assert_eq!(constant.render(&json!({})).unwrap(), json!({"a": [1, "b"]}));
}

#[test]
fn evaluation_errors_name_the_expression() {
    let t = Template::compile(&json!({"x": "${input.missing.deep}"})).unwrap();
    let e = t.render(&json!({"input": {}})).unwrap_err();
    assert_eq!(e.expr, "input.missing.deep");
    assert_eq!(
        e.to_string(),
        "expression `input.missing.deep`: No such key: missing"
    );
    let c = Condition::compile("${input.n}").unwrap();
    assert_eq!(
        c.eval_bool(&json!({"input": {"n": 1}}))
            .unwrap_err()
            .to_string(),
        "expression `input.n`: expected a boolean, got a number"
    );
    let c = Condition::compile("${steps.a.output.ok}").unwrap();
    assert_eq!(
        c.eval_bool(&json!({"steps": {}})).unwrap_err().to_string(),
        "expression `steps.a.output.ok`: No such key: a"
    );
    // A bare expression is a condition too.
    let c = Condition::compile("input.n > 1 && input.s.startsWith('ab')").unwrap();
    assert!(
        c.eval_bool(&json!({"input": {"n": 2, "s": "abc"}}))
            .unwrap()
    );
    assert!(Condition::constant(true).eval_bool(&json!({})).unwrap());
}

#[test]
fn steps_and_run_in_scope() {
    let t = Template::compile(&json!({
        "a": "${steps.first.output.v + 1}",
        "b": "${steps['get-user'].output}",
        "r": "${run.flow}#${run.attempt}",
    }))
    .unwrap();
    assert_eq!(t.step_refs(), ["first", "get-user"]);
    let scope = json!({
        "steps": {"first": {"output": {"v": 1}}, "get-user": {"output": "bob"}, "other": {"output": 1}},
        "run": {"id": "r1", "flow": "orders", "attempt": 2},
    });
    assert_eq!(
        t.render(&scope).unwrap(),
        json!({"a": 2, "b": "bob", "r": "orders#2"})
    );
    // Dynamic access binds all the steps.
    let t = Template::compile(&json!("${steps[input.k].output}")).unwrap();
    let scope = json!({"input": {"k": "other"}, "steps": {"other": {"output": 5}}});
    assert_eq!(t.render(&scope).unwrap(), json!(5));
}

#[test]
fn referenced_step_ids() {
    assert_eq!(
        referenced_steps("${steps.a.output.x == steps['b-c'].output && has(steps.d.output)}")
            .unwrap(),
        ["a", "b-c", "d"]
    );
    assert_eq!(
        referenced_steps("steps.a.output.map(s, s.x)").unwrap(),
        ["a"]
    );
    assert_eq!(referenced_steps("input.x").unwrap(), Vec::<String>::new());
    assert!(referenced_steps("${(}").is_err());
}

// ---- retries ----

#[test]
fn backoff_is_exponential_capped_and_jittered() {
    let mut p = RetryPolicy {
        max_attempts: 10,
        initial_interval: Duration::from_millis(100),
        backoff_coefficient: 2.0,
        max_interval: Duration::from_secs(1),
        jitter: Jitter::None,
        ..RetryPolicy::default()
    };
    let ms = |p: &RetryPolicy, attempt, rng| p.backoff(attempt, rng).as_millis();
    assert_eq!(ms(&p, 1, 0.5), 100);
    assert_eq!(ms(&p, 2, 0.5), 200);
    assert_eq!(ms(&p, 3, 0.5), 400);
    assert_eq!(ms(&p, 4, 0.5), 800);
    assert_eq!(ms(&p, 5, 0.5), 1000);
    assert_eq!(ms(&p, 60, 0.5), 1000);
    assert_eq!(ms(&p, 0, 0.5), 100);
    p.jitter = Jitter::Full;
    assert_eq!(ms(&p, 3, 0.5), 200);
    assert_eq!(ms(&p, 3, 0.0), 0);
    assert_eq!(ms(&p, 5, 0.25), 250);
    p.jitter = Jitter::Equal;
    assert_eq!(ms(&p, 3, 0.5), 300);
    assert_eq!(ms(&p, 3, 0.0), 200);
    assert_eq!(ms(&p, 5, 0.5), 750);
    p.backoff_coefficient = 1.0;
    p.jitter = Jitter::None;
    assert_eq!(ms(&p, 7, 0.9), 100);
}

#[test]
fn which_errors_are_retried() {
    use ErrorKind::*;
    let default = RetryPolicy::block_default();
    for kind in [Transient, Deadline, Host] {
        assert!(default.should_retry(kind), "{kind}");
    }
    for kind in [
        Permanent,
        InvalidInput,
        Trap,
        Fuel,
        Memory,
        OutputTooLarge,
        CircuitOpen,
    ] {
        assert!(!default.should_retry(kind), "{kind}");
    }
    let p = RetryPolicy {
        non_retryable: vec![Deadline],
        ..RetryPolicy::block_default()
    };
    assert!(!p.should_retry(Deadline));
    assert!(p.should_retry(Transient));
    let p = RetryPolicy {
        retry_on: Some(vec![Trap, Transient]),
        non_retryable: vec![Transient],
        ..RetryPolicy::block_default()
    };
    assert!(p.should_retry(Trap));
    assert!(!p.should_retry(Transient));
    assert!(!p.should_retry(Host));
    // Every kind a call fails with is a valid retry kind; of the flow's, only circuit-open.
    let accepted: Vec<_> = ErrorKind::ALL
        .into_iter()
        .filter(|k| RetryPolicy::accepts(*k))
        .collect();
    assert_eq!(accepted[..9], ErrorKind::ALL[..9]);
    assert_eq!(accepted[9..], [CircuitOpen]);
}

// ---- loading ----

#[tokio::test]
async fn load_flow_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.yaml");
    std::fs::write(&path, "flow: f\nsteps:\n  - id: s\n    plugin: a\n").unwrap();
    let known = |n: &str| n == "a";
    let flow = load_flow(&path, Some(&known)).await.unwrap();
    assert_eq!(flow.file, path);
    let missing = dir.path().join("none.yaml");
    let e = load_flow(&missing, None).await.unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 0);
    assert!(
        e[0].to_string().starts_with(&format!(
            "{}: cannot read the flow file: ",
            missing.display()
        )),
        "{}",
        e[0]
    );
}

#[test]
fn anchors_and_aliases() {
    let flow = ok(
        "flow: f\nsteps:\n  - id: s\n    plugin: a\n    retry: &r {max_attempts: 5}\n  - id: t\n    plugin: a\n    retry: *r\n",
    );
    assert_eq!(flow.steps[1].plugin().unwrap().retry.max_attempts, 5);
}

#[test]
fn documented_functions_work() {
    let t = Template::compile(&json!([
        "${math.greatest(1, input.n)}",
        "${'ABC'.lowerAscii()}",
        "${[1, 2, 3].filter(x, x > 1).size()}",
        "${'abc'.matches('^a')}",
        "${lists.range(3)}",
        "${input.n in [1, 5]}",
        "${input.n < 5.5}",
        "${double(input.n) * 1.5}",
        "${['a', 'b'].join('-')}",
        "${has(input.m) ? 'yes' : 'no'}",
        "${input.s.split(',')}",
    ]))
    .unwrap();
    assert_eq!(
        t.render(&json!({"input": {"n": 5, "s": "x,y"}})).unwrap(),
        json!([
            5,
            "abc",
            2,
            true,
            [0, 1, 2],
            true,
            true,
            7.5,
            "a-b",
            "no",
            ["x", "y"]
        ])
    );
}
