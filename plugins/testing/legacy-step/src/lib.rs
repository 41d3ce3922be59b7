//! A step built against the first contract, `flowhost:step@0.1.0` (a copy
//! of that WIT is in `wit/`, never to be changed), with `wit-bindgen`
//! directly: newer hosts must keep loading and running it. It logs its step
//! id and returns its input.

/// Generated from `wit/step.wit` (0.1.0), as the SDK does for 0.1.1.
#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "step", path: "wit" });
}

use bindings::flowhost::step::host::{Level, log};
use bindings::{Context, Guest, Metadata, StepError};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Metadata {
        Metadata {
            name: "legacy-step".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn run(ctx: Context, input: String) -> Result<String, StepError> {
        log(
            Level::Info,
            &format!("legacy step {} (attempt {})", ctx.step_id, ctx.attempt),
        );
        Ok(input)
    }
}

bindings::export!(Legacy with_types_in bindings);
