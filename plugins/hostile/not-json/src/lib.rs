//! Hostile: breaks the contract by returning text that is not JSON. It
//! implements the generated bindings itself, as the SDK always writes JSON.
//! The host must refuse the output as the step's own error.

use flowhost_sdk::bindings::{self, Guest};

struct NotJson;

impl Guest for NotJson {
    fn describe() -> bindings::Metadata {
        bindings::Metadata {
            name: "not-json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn run(_ctx: bindings::Context, _input: String) -> Result<String, bindings::StepError> {
        Ok(r#"{"total": 12, oops"#.into())
    }
}

flowhost_sdk::bindings::export!(NotJson with_types_in flowhost_sdk::bindings);
