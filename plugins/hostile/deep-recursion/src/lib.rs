//! Hostile: recurses without bound until the stack overflows. The host must
//! turn the trap into a failed call.

use std::hint::black_box;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

struct DeepRecursion;

impl Step for DeepRecursion {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        Ok(recurse(0).into())
    }
}

/// Never returns normally. The opaque base case and the work after the call
/// keep the optimiser from proving that, or from turning it into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == black_box(u64::MAX) {
        return depth;
    }
    let below = recurse(depth + 1);
    black_box(below ^ depth)
}

export_step!(DeepRecursion);
