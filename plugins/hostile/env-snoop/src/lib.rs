//! Hostile: returns every environment variable and argument the guest can
//! see, as `{"vars": {name: value}, "args": [...]}`, so a test can check that
//! none of the host's environment leaks in.

use std::collections::BTreeMap;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct Output {
    vars: BTreeMap<String, String>,
    args: Vec<String>,
}

struct EnvSnoop;

impl Step for EnvSnoop {
    type Input = Value;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Output, StepError> {
        // vars_os: a non-UTF-8 variable must not stop the snooping.
        let vars = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let args = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Ok(Output { vars, args })
    }
}

export_step!(EnvSnoop);
