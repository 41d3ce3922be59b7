//! Every example flow in `flows/examples/` runs on its input file to its
//! known output, as `flowhost run FLOW --plugins plugins/dist --input @FILE`
//! would run it (a fresh executor per run).

use std::path::PathBuf;

use flowhost::executor::StepStatus;
use flowhost::{Executor, RunRecord, RunStatus};
use serde_json::{Value, json};

use crate::support::{host, parse_at, root, run_parsed, step};

fn examples() -> PathBuf {
    root().join("flows/examples")
}

async fn run_example(name: &str) -> RunRecord {
    let path = examples().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let flow = parse_at(&path, &text);
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join(format!("{name}.input.json"))).unwrap(),
    )
    .unwrap();
    run_parsed(&Executor::new(host().clone()), &flow, input).await
}

fn output(record: &RunRecord) -> Value {
    assert_eq!(
        record.status,
        RunStatus::Succeeded,
        "{}: {:?}",
        record.flow,
        record.error
    );
    record.output_value().unwrap()
}

/// The examples run below, by test name.
const TESTED: [&str; 11] = [
    "circuit_breaker",
    "continue_on_error",
    "fallback",
    "for_each",
    "on_error",
    "orders",
    "parallel",
    "retry",
    "sequential",
    "switch",
    "timeouts",
];

/// Examples that need plugins `plugins/build.sh` does not build (they are
/// checked for syntax only).
const OTHER_TOOLCHAINS: [&str; 1] = ["polyglot"];

#[test]
fn every_example_parses_has_an_input_and_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".yaml")?;
            (!stem.contains('.')).then(|| stem.to_string())
        })
        .collect();
    found.sort();
    for name in &found {
        let path = examples().join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(errors) = flowhost::flow::parse_flow(&path, &text, None) {
            panic!("{}: {errors:?}", path.display());
        }
        assert!(
            examples().join(format!("{name}.input.json")).exists(),
            "{name}.input.json is missing"
        );
        assert!(
            TESTED.contains(&name.as_str()) || OTHER_TOOLCHAINS.contains(&name.as_str()),
            "example {name} needs a test in tests/e2e/examples.rs"
        );
    }
    for name in TESTED {
        assert!(found.iter().any(|f| f == name), "example {name} is gone");
    }
}

#[tokio::test]
async fn orders() {
    let record = run_example("orders").await;
    assert_eq!(
        output(&record),
        json!({
            "count": 3,
            "messages": [
                "Hi acme (gold member), your order A-1001 (3 items) is confirmed. Total: 26.44 EUR.",
                "Hi bob, your order B-2002 (6 items) is confirmed. Total: 3.42 EUR.",
                "Hi carol, your order C-3003 (1 item) is confirmed. Total: 30.00 EUR."
            ],
            "gold": ["A-1001"]
        })
    );
    assert_eq!(
        step(&record, "each_order[0].notify.gold_note").status,
        StepStatus::Succeeded
    );
    assert_eq!(
        step(&record, "each_order[1].notify.note").status,
        StepStatus::Succeeded
    );
}

#[tokio::test]
async fn orders_input_schema() {
    let path = examples().join("orders.yaml");
    let flow = parse_at(&path, &std::fs::read_to_string(&path).unwrap());
    let record = run_parsed(
        &Executor::new(host().clone()),
        &flow,
        json!({"orders": [{"id": "X", "customer": "y"}]}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.kind, "invalid-input");
    assert!(error.message.contains("items"), "{}", error.message);
}

#[tokio::test]
async fn sequential() {
    let record = run_example("sequential").await;
    assert_eq!(
        output(&record),
        json!({"from_greet": "hello ada", "doubled": 42, "name_upper": "ADA"})
    );
}

#[tokio::test]
async fn parallel() {
    let record = run_example("parallel").await;
    assert_eq!(
        output(&record),
        json!({"tier": "silver", "total": 11.0, "audited": "P-1"})
    );
}

#[tokio::test]
async fn switch() {
    let record = run_example("switch").await;
    assert_eq!(output(&record), json!({"lane": "express", "ticket": 42}));
}

#[tokio::test]
async fn for_each() {
    let record = run_example("for_each").await;
    let out = output(&record);
    let out = out.as_array().unwrap();
    let squares: Vec<_> = out.iter().map(|o| o["square"].clone()).collect();
    assert_eq!(squares, [9, 1, 16, 1, 25]);
    assert_eq!(
        out[2],
        json!({"index": 2, "value": 4, "square": 16, "label": "item 2: 4"})
    );
}

#[tokio::test]
async fn retry() {
    let record = run_example("retry").await;
    assert_eq!(
        output(&record),
        json!({"attempt": 3, "input": {"request": "quote"}})
    );
    assert_eq!(step(&record, "fetch").attempts.len(), 3);
}

#[tokio::test]
async fn circuit_breaker() {
    let record = run_example("circuit_breaker").await;
    assert_eq!(
        output(&record),
        json!({"degraded": true, "reason": "circuit-open", "request": "quote"})
    );
    let quote = step(&record, "quote");
    assert_eq!(quote.status, StepStatus::Recovered);
    assert!(quote.breaker_open);
    assert_eq!(quote.attempts.len(), 2, "2 calls, then the breaker refused");
}

#[tokio::test]
async fn fallback() {
    let record = run_example("fallback").await;
    assert_eq!(
        output(&record),
        json!({
            "source": "cache",
            "sku": "WIDGET",
            "failed_with": "permanent: price service unavailable"
        })
    );
    assert_eq!(step(&record, "primary").status, StepStatus::Recovered);
}

#[tokio::test]
async fn timeouts() {
    let record = run_example("timeouts").await;
    let expected = json!({"cached": true, "reason": "deadline"});
    assert_eq!(
        output(&record),
        json!({"quick": expected, "echo_back": expected})
    );
    let slow = step(&record, "slow");
    assert_eq!(slow.status, StepStatus::Recovered);
    assert_eq!(slow.attempts.len(), 2, "deadline errors are retried");
    assert!(record.duration_ms < 2000.0, "{} ms", record.duration_ms);
}

#[tokio::test]
async fn on_error() {
    let record = run_example("on_error").await;
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.kind.as_str()),
        ("charge", "permanent")
    );
    assert_eq!(step(&record, "on_error").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn continue_on_error() {
    let record = run_example("continue_on_error").await;
    assert_eq!(output(&record), json!({"user": "ada", "stage": "prepared"}));
    assert_eq!(
        step(&record, "optional_audit").status,
        StepStatus::Continued
    );
}
