//! {{name}}: greets `{"name": "..."}` with `{"greeting": "Hello, ...!"}`.

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

struct Greet;

impl Step for Greet {
    type Input = Input;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Input) -> Result<Output, StepError> {
        if input.name.is_empty() {
            return Err(StepError::invalid_input("name is missing"));
        }
        log::info!("greeting {} (attempt {})", input.name, ctx.attempt());
        Ok(Output {
            greeting: format!("Hello, {}!", input.name),
        })
    }
}

export_step!(Greet);
