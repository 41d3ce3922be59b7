//! Appends one line to a file and returns `{"appended": line}`: the line is
//! the input's `line` field, or `<run id> <step id>` when it has none. A file
//! in a granted writable directory then shows how many times each step ran
//! (tests of durable runs). Errors are `permanent` with the OS message.
//!
//! Config: `{"file": "..."}` (a guest path).

use std::io::Write;

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Config {
    file: String,
}

struct Append;

impl Step for Append {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, input: Value) -> Result<Value, StepError> {
        let Config { file } = ctx.config()?;
        let line = match input.get("line") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => format!("{} {}", ctx.run_id(), ctx.step_id()),
        };
        let failed = |e: std::io::Error| StepError::permanent(format!("{file}: {e}"));
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(failed)?;
        // One write of the whole line, so concurrent calls never interleave.
        out.write_all(format!("{line}\n").as_bytes())
            .map_err(failed)?;
        Ok(json!({ "appended": line }))
    }
}

export_step!(Append);
