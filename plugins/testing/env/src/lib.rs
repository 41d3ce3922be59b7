//! Reports the environment the host passed: `{"vars": {name: value}}`, plus
//! `"value"` (a string, or null when unset) when config names a variable.
//!
//! Config: `{"name": "..."}` (optional).

use std::collections::BTreeMap;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    name: Option<String>,
}

#[derive(Serialize)]
struct Output {
    vars: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<String>>,
}

struct Env;

impl Step for Env {
    type Input = Value;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Output, StepError> {
        let Config { name } = ctx.config()?;
        Ok(Output {
            vars: std::env::vars().collect(),
            value: name.map(|n| std::env::var(n).ok()),
        })
    }
}

export_step!(Env);
