//! Sleeps `ms` milliseconds on a WASI clock, then returns its input.
//! Tests timeouts and concurrency.
//!
//! Config: `{"ms": N}` (default 0).

use std::time::Duration;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    ms: u64,
}

struct Sleep;

impl Step for Sleep {
    type Input = Box<RawValue>;
    type Output = Box<RawValue>;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Box<RawValue>) -> Result<Box<RawValue>, StepError> {
        let config: Config = ctx.config()?;
        // On wasip2 this blocks in wasi:clocks/monotonic-clock, so the host sees
        // a guest waiting on I/O rather than spinning.
        std::thread::sleep(Duration::from_millis(config.ms));
        Ok(input)
    }
}

export_step!(Sleep);
