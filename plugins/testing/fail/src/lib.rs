//! Always fails, with the configured kind and message. Tests error mapping.
//!
//! Config: `{"kind": "transient" | "permanent" | "invalid-input", "message": "...", "log": "..."}`
//! (defaults: permanent, "requested failure", no log line).

use flowhost_sdk::{Context, Metadata, Step, StepError, export_step};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Transient,
    #[default]
    Permanent,
    InvalidInput,
}

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    kind: Kind,
    message: String,
    /// A line to log before failing (what a viewer must show as text).
    log: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kind: Kind::default(),
            message: "requested failure".into(),
            log: None,
        }
    }
}

struct Fail;

impl Step for Fail {
    type Input = Value;
    type Output = Value;

    fn metadata() -> Metadata {
        flowhost_sdk::metadata!()
    }

    fn run(ctx: &Context, _input: Value) -> Result<Value, StepError> {
        let Config { kind, message, log } = ctx.config()?;
        if let Some(line) = log {
            flowhost_sdk::log::info(&line);
        }
        Err(match kind {
            Kind::Transient => StepError::transient(message),
            Kind::Permanent => StepError::permanent(message),
            Kind::InvalidInput => StepError::invalid_input(message),
        })
    }
}

export_step!(Fail);
