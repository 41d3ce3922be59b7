//! Fails with a transient error while the attempt number is below
//! `fail_until`, then returns `{"attempt": N, "input": ...}`. Tests retries.
//!
//! Config: `{"fail_until": N}` (default 0: never fails).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    fail_until: u32,
}

#[derive(Serialize)]
struct Output {
    attempt: u32,
    input: Box<RawValue>,
}

struct Flaky;

impl Step for Flaky {
    type Input = Box<RawValue>;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Box<RawValue>) -> Result<Output, StepError> {
        let config: Config = ctx.config()?;
        let attempt = ctx.attempt();
        if attempt < config.fail_until {
            log::info!("attempt {attempt} fails (until {})", config.fail_until);
            return Err(StepError::transient(format!(
                "flaky: attempt {attempt} fails, attempt {} will succeed",
                config.fail_until
            )));
        }
        log::info!("attempt {attempt} succeeds");
        Ok(Output { attempt, input })
    }
}

export_step!(Flaky);
