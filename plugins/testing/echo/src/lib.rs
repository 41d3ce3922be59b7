//! Returns its input unchanged, byte for byte.

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::value::RawValue;

struct Echo;

impl Step for Echo {
    // RawValue keeps the JSON text as it came: no reordering or reformatting.
    type Input = Box<RawValue>;
    type Output = Box<RawValue>;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, input: Box<RawValue>) -> Result<Box<RawValue>, StepError> {
        Ok(input)
    }
}

export_step!(Echo);
