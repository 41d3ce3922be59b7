//! Returns `{"key": <execution key>, "attempt": N}`. Before that it appends
//! the key to `file` (when set), sleeps `sleep_ms`, and fails with a
//! `transient` error naming the key while the attempt is below `fail_until`:
//! tests see the key of every attempt, also of one a crash cut short.
//!
//! Config: `{"file"?: "...", "sleep_ms"?: N, "fail_until"?: N}`.

use std::io::Write;
use std::time::Duration;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    file: Option<String>,
    sleep_ms: u64,
    fail_until: u32,
}

struct Key;

impl Step for Key {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let config: Config = ctx.config()?;
        let key = ctx.execution_key();
        if let Some(file) = &config.file {
            let failed = |e: std::io::Error| StepError::permanent(format!("{file}: {e}"));
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_err(failed)?;
            out.write_all(format!("{key}\n").as_bytes())
                .map_err(failed)?;
        }
        std::thread::sleep(Duration::from_millis(config.sleep_ms));
        let attempt = ctx.attempt();
        if attempt < config.fail_until {
            return Err(StepError::transient(format!(
                "attempt {attempt} with key {key}"
            )));
        }
        Ok(json!({ "key": key, "attempt": attempt }))
    }
}

export_step!(Key);
