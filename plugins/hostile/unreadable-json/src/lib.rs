//! Hostile: returns valid JSON that no `serde_json::Value` can hold. With
//! config `{"shape": "deep"}`, arrays nested 100,000 levels; otherwise a
//! number beyond a double (`1e400`). The host must pass such a document on
//! untouched, and fail only a read of it, with an error and no panic.
//! Like `not-json`, it implements the generated bindings itself.

use flowhost_sdk::bindings::{self, Guest};

const DEPTH: usize = 100_000;

struct UnreadableJson;

impl Guest for UnreadableJson {
    fn describe() -> bindings::Metadata {
        bindings::Metadata {
            name: "unreadable-json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn run(ctx: bindings::Context, _input: String) -> Result<String, bindings::StepError> {
        if ctx.config.contains("\"deep\"") {
            Ok(format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH)))
        } else {
            Ok(r#"{"n": 1e400}"#.into())
        }
    }
}

flowhost_sdk::bindings::export!(UnreadableJson with_types_in flowhost_sdk::bindings);
