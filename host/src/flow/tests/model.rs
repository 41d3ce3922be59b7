//! What a flow file lowers to: the model, its defaults, JSON flows, loading.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::{known, ok};
use crate::flow::expr::*;
use crate::flow::model::*;
use crate::flow::*;

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
    assert_eq!(validate.timeout, Some(Duration::from_millis(500)));
    let p = validate.plugin().unwrap();
    assert_eq!(p.plugin, "validate-order");
    assert_eq!(p.config, json!({"strict": true}));
    assert_eq!(p.retry.max_attempts, 4);
    assert_eq!(p.retry.initial_interval, Duration::from_millis(50));
    assert_eq!(p.retry.max_interval, Duration::from_secs(2));
    assert_eq!(p.retry.jitter, Jitter::Full);
    assert_eq!(
        p.retry.non_retryable,
        [crate::ErrorKind::Permanent, crate::ErrorKind::InvalidInput]
    );
    assert_eq!(p.retry.retry_on, Some(vec![crate::ErrorKind::Trap]));
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
    assert_eq!(p.grants.http, ["api.example.com".parse().unwrap()]);
    assert_eq!(p.limits.fuel, Some(100_000_000));
    assert_eq!(p.limits.max_memory, Some(64 << 20));
    let limits = p.limits.apply(&crate::Limits::default(), validate.timeout);
    assert_eq!(limits.fuel, Some(100_000_000));
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

#[test]
fn without_a_plugin_check_any_plugin_name_goes() {
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
fn a_size_may_be_a_number_of_bytes() {
    let flow = ok("flow: f\nsteps:\n  - id: s\n    plugin: a\n    limits: {memory: 1048576}\n");
    assert_eq!(
        flow.steps[0].plugin().unwrap().limits.max_memory,
        Some(1 << 20)
    );
}

#[test]
fn input_schema_errors_name_where() {
    assert_eq!(
        InputSchema::compile(&json!({"minimum": "x"})).unwrap_err(),
        "at /minimum: \"x\" is not of type \"number\""
    );
}

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
    assert_eq!(flow.steps[0].plugin().unwrap().retry.max_attempts, 2);
    // JSON content in a file without the extension.
    let flow = parse_flow(Path::new("flow.txt"), text, Some(&known)).unwrap();
    assert_eq!(flow.name, "j");
}

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
