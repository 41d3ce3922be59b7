//! Hostile: panics. On wasm32 a panic prints its message to stderr and then
//! aborts the guest with a trap.

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

struct Panic;

impl Step for Panic {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Value, StepError> {
        panic!("hostile panic: step {} panicked on purpose", ctx.step_id());
    }
}

export_step!(Panic);
