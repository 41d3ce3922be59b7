//! Hostile: writes 1 KiB lines to the host log without end. The host must cap
//! log volume and still stop the step (fuel or timeout).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
use serde_json::Value;

struct LogFlood;

impl Step for LogFlood {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let line = "flood ".repeat(1024 / 6) + "!!!!";
        debug_assert_eq!(line.len(), 1024);
        loop {
            log::info(&line);
        }
    }
}

export_step!(LogFlood);
