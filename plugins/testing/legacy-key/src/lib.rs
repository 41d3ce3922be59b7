//! A step built against `flowhost:step@0.1.1` (a copy of that WIT is in
//! `wit/`, never to be changed), with `wit-bindgen` directly: newer hosts
//! must keep loading and running it. It returns `{"key": <execution key>,
//! "input": <its input>}`.

/// Generated from `wit/step.wit` (0.1.1).
#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "step", path: "wit" });
}

use bindings::flowhost::step::host::execution_key;
use bindings::{Context, Guest, Metadata, StepError};

struct LegacyKey;

impl Guest for LegacyKey {
    fn describe() -> Metadata {
        Metadata {
            name: "legacy-key".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn run(_ctx: Context, input: String) -> Result<String, StepError> {
        let key = execution_key().replace('\\', "\\\\").replace('"', "\\\"");
        Ok(format!("{{\"key\":\"{key}\",\"input\":{input}}}"))
    }
}

bindings::export!(LegacyKey with_types_in bindings);
