//! Counts calls in a global. Every call gets a fresh instance, so it always says 1;
//! anything else means state leaked between calls.

use std::sync::atomic::{AtomicU32, Ordering};

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::{Value, json};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Step for Counter {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        Ok(json!({ "calls": CALLS.fetch_add(1, Ordering::SeqCst) + 1 }))
    }
}

export_step!(Counter);
