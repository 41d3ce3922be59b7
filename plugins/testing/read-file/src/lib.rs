//! Reads a file through `std::fs` and returns `{"contents": "..."}`, or, when
//! `write` is given, writes that string to the file and returns
//! `{"written": <bytes>}`. Tests the host's directory grants: a refused path
//! is a permanent error carrying the OS error message.
//!
//! Config: `{"path": "...", "write": "..."}` (`write` optional).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Config {
    path: String,
    write: Option<String>,
}

struct ReadFile;

impl Step for ReadFile {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let Config { path, write } = ctx.config()?;
        let failed = |e: std::io::Error| StepError::permanent(format!("{path}: {e}"));
        match write {
            Some(text) => {
                std::fs::write(&path, &text).map_err(failed)?;
                Ok(json!({ "written": text.len() }))
            }
            None => {
                let contents = std::fs::read_to_string(&path).map_err(failed)?;
                Ok(json!({ "contents": contents }))
            }
        }
    }
}

export_step!(ReadFile);
