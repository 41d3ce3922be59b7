//! The library API as an embedder uses it.

use flowhost::{
    CallOptions, Config, Context, ErrorKind, Host, InputError, RunInput, RunOptions, RunStatus,
};
use serde_json::json;

use crate::support::{call, executor, host, parse, plugin, plugin_set, wasm};

#[tokio::test]
async fn three_line_embedding() {
    let host = Host::new(Config::default()).unwrap();
    let echo = host.load(wasm("testing/echo")).await.unwrap();
    let out = host
        .call(&echo, &Context::direct("echo"), r#"{"hi":1}"#)
        .await
        .unwrap();
    assert_eq!(out, r#"{"hi":1}"#);
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    for _ in 0..3 {
        let out = call("testing/counter", "{}", "{}", CallOptions::default())
            .await
            .result
            .unwrap();
        assert_eq!(out, r#"{"calls":1}"#, "state leaked between calls");
    }
}

#[tokio::test]
async fn context_reaches_the_step() {
    let p = plugin("testing/flaky").await;
    let ctx = Context {
        attempt: 3,
        config: json!({"fail_until": 3}).to_string(),
        ..Context::direct("flaky")
    };
    let out = host().call(&p, &ctx, "{}").await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["attempt"],
        3
    );
    let early = Context { attempt: 2, ..ctx };
    let err = host().call(&p, &early, "{}").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn limits_built_in_code_are_checked_naming_the_field() {
    let zero_fuel = flowhost::Limits {
        fuel: Some(0),
        ..flowhost::Limits::default()
    };
    let tiny_memory = flowhost::Limits {
        max_memory: 1024,
        ..flowhost::Limits::default()
    };
    for (limits, field) in [(zero_fuel, "`fuel`"), (tiny_memory, "`max_memory`")] {
        let report = call("testing/echo", "{}", "{}", crate::support::limited(limits)).await;
        let err = report.result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Host, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("host: invalid limits: {field}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn describe_returns_metadata() {
    let p = plugin("validate-order").await;
    let meta = host().describe(&p).await.unwrap();
    assert_eq!(meta.name, "validate-order");
    assert!(!meta.description.is_empty());
}

#[tokio::test]
async fn fuel_used_is_reported() {
    let config = json!({"iterations": 1000}).to_string();
    let small = call("testing/spin", "{}", &config, CallOptions::default()).await;
    let config = json!({"iterations": 100000}).to_string();
    let big = call("testing/spin", "{}", &config, CallOptions::default()).await;
    small.result.unwrap();
    big.result.unwrap();
    assert!(
        big.fuel_used > small.fuel_used * 10,
        "{} vs {}",
        big.fuel_used,
        small.fuel_used
    );
}

#[tokio::test]
async fn peak_memory_is_reported() {
    let small = call("testing/echo", "{}", "{}", CallOptions::default()).await;
    let big_input = json!({ "blob": "x".repeat(4 << 20) }).to_string();
    let big = call("testing/echo", &big_input, "{}", CallOptions::default()).await;
    small.result.unwrap();
    big.result.unwrap();
    assert!(small.peak_memory >= 64 << 10, "{}", small.peak_memory);
    assert!(
        big.peak_memory > small.peak_memory + (4 << 20),
        "{} vs {}",
        big.peak_memory,
        small.peak_memory
    );
}

#[tokio::test]
async fn a_flow_runs_on_json_text_and_its_output_is_the_last_steps_text() {
    let flow = parse("flow: t\nsteps:\n  - {id: a, plugin: echo}\n  - {id: b, plugin: echo}\n");
    let plugins = plugin_set(&flow).await;
    let text = r#"{"price": 9.990, "items": [1, 2]}"#;
    let input = RunInput::parse(text.into(), "the input").unwrap();
    let record = executor()
        .run_input(&flow, &plugins, input, RunOptions::default())
        .await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    // Byte for byte what echo writes: nothing parses and re-prints it.
    let direct = call("testing/echo", text, "{}", CallOptions::default())
        .await
        .result
        .unwrap();
    assert_eq!(record.output.as_ref().unwrap().get(), direct);
    assert_eq!(
        record.output_value(),
        Some(json!({"price": 9.99, "items": [1, 2]}))
    );
}

#[test]
fn json_text_that_is_not_json_is_refused_naming_where_it_came_from() {
    let err = RunInput::parse("{\"a\": 1,".into(), "the request body").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the request body is not valid JSON: EOF while parsing an object at line 1 column 8"
    );
}

#[tokio::test]
async fn json_text_is_checked_against_the_input_schema_once_where_it_enters() {
    let flow = parse(
        "flow: t\ninput_schema: {type: object, required: [n]}\nsteps:\n  - {id: a, plugin: echo}\n",
    );
    let mut bad = RunInput::parse(r#"{"m": 1}"#.into(), "--input").unwrap();
    let err = bad.check(&flow).unwrap_err();
    assert!(
        matches!(&err, InputError::Schema { violations } if violations.contains("\"n\" is a required property")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("the input does not match the flow's input_schema: input: "),
        "{err}"
    );
    // A flow without a schema takes any JSON.
    let open = parse("flow: t\nsteps:\n  - {id: a, plugin: echo}\n");
    assert_eq!(bad.check(&open), Ok(()));

    // The value convenience checks too, and records the refusal as a failed run.
    let plugins = plugin_set(&flow).await;
    let record = executor()
        .run(&flow, &plugins, json!({"m": 1}), RunOptions::default())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind),
        ("input", ErrorKind::InvalidInput)
    );
    assert!(record.steps.is_empty(), "no step ran");

    // An input nobody checked is checked by the executor: the schema holds
    // whoever forgets it.
    let unchecked = RunInput::parse(r#"{"m": 1}"#.into(), "--input").unwrap();
    let record = executor()
        .run_input(&flow, &plugins, unchecked, RunOptions::default())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.unwrap().kind, ErrorKind::InvalidInput);
    assert!(record.steps.is_empty(), "no step ran");
}

#[test]
fn a_run_input_is_stored_as_the_json_it_was_given() {
    let text = r#"{"price": 9.990,  "deep": [[1e400]]}"#;
    let input = RunInput::parse(text.into(), "--input").unwrap();
    // Inside a record or a store's row: the very text, never re-serialised.
    let stored = serde_json::to_string(&[&input]).unwrap();
    assert_eq!(stored, format!("[{text}]"));
    let back: RunInput = serde_json::from_str(text).unwrap();
    assert_eq!(back.get(), text);
}
