//! Hostile: spins forever without calling the host. The host must stop it
//! (fuel or epoch deadline).

use std::hint::black_box;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

struct BusyLoop;

impl Step for BusyLoop {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let mut counter: u64 = 0;
        loop {
            // black_box makes each increment observable, so the loop stays.
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

export_step!(BusyLoop);
