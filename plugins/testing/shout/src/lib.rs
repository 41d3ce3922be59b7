//! Returns its input with a string `name` field in upper case, the rest as
//! it came: an `echo` whose answer changes for some inputs only (replay tests).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

struct Shout;

impl Step for Shout {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, mut input: Value) -> Result<Value, StepError> {
        if let Some(Value::String(name)) = input.get_mut("name") {
            *name = name.to_uppercase();
        }
        Ok(input)
    }
}

export_step!(Shout);
