//! Native tests of the glue: parsing, errors, config.

use serde::{Deserialize, Serialize};

use crate::export::run;
use crate::{Context, Metadata, Step, StepError};

#[derive(Deserialize, Serialize)]
struct Pair {
    a: u32,
    b: u32,
}

struct Sum;

impl Step for Sum {
    type Input = Pair;
    type Output = serde_json::Value;

    fn metadata() -> Metadata {
        crate::metadata!()
    }

    fn run(ctx: &Context, p: Pair) -> Result<serde_json::Value, StepError> {
        let scale: u32 = ctx.config::<Option<u32>>()?.unwrap_or(1);
        Ok(serde_json::json!({ "sum": (p.a + p.b) * scale, "attempt": ctx.attempt() }))
    }
}

/// A step whose output cannot be JSON (a map with non-string keys).
struct BadOutput;

impl Step for BadOutput {
    type Input = serde_json::Value;
    type Output = std::collections::HashMap<(u8, u8), u8>;

    fn metadata() -> Metadata {
        Metadata::new("bad", "0", "")
    }

    fn run(_: &Context, _: serde_json::Value) -> Result<Self::Output, StepError> {
        Ok([((1, 2), 3)].into())
    }
}

fn ctx(config: &str) -> Context {
    Context::new("f", "r", "s", 2, config)
}

#[test]
fn runs_typed_step() {
    assert_eq!(
        run::<Sum>(&ctx("3"), r#"{"a":1,"b":2}"#).unwrap(),
        r#"{"attempt":2,"sum":9}"#
    );
    assert_eq!(
        run::<Sum>(&ctx("null"), r#"{"a":1,"b":2}"#).unwrap(),
        r#"{"attempt":2,"sum":3}"#
    );
}

#[test]
fn bad_input_is_invalid_input() {
    for input in ["nope", r#"{"a":1}"#, r#"{"a":-1,"b":2}"#] {
        let err = run::<Sum>(&ctx("{}"), input).unwrap_err();
        assert!(matches!(err, StepError::InvalidInput(_)), "{err}");
        assert!(
            err.message()
                .starts_with("input is not valid JSON for this step: "),
            "{err}"
        );
    }
}

#[test]
fn bad_config_is_invalid_input() {
    let err = run::<Sum>(&ctx(r#""x""#), r#"{"a":1,"b":2}"#).unwrap_err();
    assert_eq!(err.kind(), "invalid-input");
    assert!(
        err.message().starts_with("invalid config for this step: "),
        "{err}"
    );
}

#[test]
fn unserialisable_output_is_permanent() {
    let err = run::<BadOutput>(&ctx("{}"), "{}").unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err}");
}

#[test]
fn metadata_comes_from_cargo() {
    let m = Sum::metadata();
    assert_eq!(
        (m.name.as_str(), m.version.as_str()),
        ("flowhost-sdk", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serde_errors_convert_to_invalid_input() {
    let e: StepError = serde_json::from_str::<u8>("x").unwrap_err().into();
    assert_eq!(e.kind(), "invalid-input");
    assert_eq!(StepError::transient("t").to_string(), "transient: t");
}

#[test]
fn the_execution_key_is_run_and_step_unless_set() {
    let ctx = Context::new("f", "r1", "charge", 2, "{}");
    assert_eq!(ctx.execution_key(), "r1/charge");
    let ctx = ctx.with_execution_key("r1/lines[3].charge");
    assert_eq!(ctx.execution_key(), "r1/lines[3].charge");
}

#[test]
fn sql_params_convert_from_rust_values() {
    use crate::sql::{self, Value};
    let params = sql::params![7, 2.5, "ada", None::<i64>, Some(true), vec![1u8, 2]];
    assert_eq!(
        params,
        [
            Value::Integer(7),
            Value::Real(2.5),
            Value::Text("ada".into()),
            Value::Null,
            Value::Boolean(true),
            Value::Blob(vec![1, 2]),
        ]
    );
}

#[test]
fn database_and_state_errors_map_to_retryable_or_not() {
    use crate::kv::KvError;
    use crate::sql::SqlError;
    let kind = |e: StepError| match e {
        StepError::Transient(m) => ("transient", m),
        StepError::Permanent(m) => ("permanent", m),
        StepError::InvalidInput(m) => ("invalid-input", m),
    };
    assert_eq!(
        kind(SqlError::Unavailable("database 'orders' is down".into()).into()),
        (
            "transient",
            "sql unavailable: database 'orders' is down".into()
        )
    );
    assert_eq!(kind(SqlError::Denied("x".into()).into()).0, "permanent");
    assert_eq!(kind(SqlError::Rejected("x".into()).into()).0, "transient");
    assert_eq!(kind(KvError::Unavailable("x".into()).into()).0, "transient");
    assert_eq!(
        kind(KvError::Denied("namespace 'c'".into()).into()),
        ("permanent", "kv denied: namespace 'c'".into())
    );
}

#[test]
fn outside_webassembly_databases_and_state_are_unavailable() {
    let db = crate::sql::Database::new("orders");
    assert!(matches!(
        db.execute("select 1", &[]),
        Err(crate::sql::SqlError::Unavailable(_))
    ));
    let ns = crate::kv::Namespace::new("counters");
    assert!(matches!(
        ns.get("k"),
        Err(crate::kv::KvError::Unavailable(_))
    ));
}
