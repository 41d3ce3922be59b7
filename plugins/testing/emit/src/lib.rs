//! Emits its input as an event on `topic` and returns `{"emitted": true}`;
//! a refusal by the host is returned as the step's (permanent) error.
//!
//! Config: `{"topic": "..."}` (required).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Config {
    topic: String,
}

#[derive(Serialize)]
struct Output {
    emitted: bool,
}

struct Emit;

impl Step for Emit {
    type Input = Box<RawValue>;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Box<RawValue>) -> Result<Output, StepError> {
        let Config { topic } = ctx.config()?;
        flowhost_sdk::emit(&topic, &input)?;
        Ok(Output { emitted: true })
    }
}

export_step!(Emit);
