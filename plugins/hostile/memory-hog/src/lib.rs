//! Hostile: allocates 1 MiB chunks forever, writing to each so the pages are
//! really used. The host's memory limit must stop it (the allocation failure
//! aborts the guest).

use std::hint::black_box;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde_json::Value;

const CHUNK: usize = 1 << 20;

struct MemoryHog;

impl Step for MemoryHog {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(_ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill: every page is written, not just reserved.
            let chunk = vec![0xA5u8; CHUNK];
            hoard.push(black_box(chunk));
        }
    }
}

export_step!(MemoryHog);
