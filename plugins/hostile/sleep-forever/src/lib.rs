//! Hostile: sleeps forever on a WASI clock, never burning fuel. Only a
//! wall-clock timeout can stop it.

use std::time::Duration;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

struct SleepForever;

impl Step for SleepForever {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

export_step!(SleepForever);
