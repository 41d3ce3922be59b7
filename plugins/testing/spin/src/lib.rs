//! Burns CPU: `iterations` rounds of a 64-bit mixing function, returning
//! `{"iterations": N, "result": <u64>}`. Deterministic, so benchmarks can
//! check the result. Config: `{"iterations": N}` (default 1000000).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    iterations: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            iterations: 1_000_000,
        }
    }
}

#[derive(Serialize)]
struct Output {
    iterations: u64,
    result: u64,
}

struct Spin;

impl Step for Spin {
    type Input = Value;
    type Output = Output;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Output, StepError> {
        let Config { iterations } = ctx.config()?;
        // Each round depends on the last (a splitmix64 step), so the
        // optimiser can neither skip nor vectorise the loop.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..iterations {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15 ^ i);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
        }
        Ok(Output {
            iterations,
            result: x,
        })
    }
}

export_step!(Spin);
