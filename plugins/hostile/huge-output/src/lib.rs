//! Hostile: returns a 200 MiB JSON string ("xxx..."). The host must cap the
//! output size (or the memory that building it needs).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

const SIZE: usize = 200 * 1024 * 1024;

struct HugeOutput;

impl Step for HugeOutput {
    type Input = Value;
    type Output = String;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<String, StepError> {
        Ok("x".repeat(SIZE))
    }
}

export_step!(HugeOutput);
