//! Unit tests for flows: the model a file lowers to (`model.rs`), the
//! validation messages (fixture files, `fixtures.rs`), expressions
//! (`exprs.rs`), their bounds (`bounds.rs`) and error messages
//! (`messages.rs`), and retries (`retry.rs`).

mod bounds;
mod exprs;
mod fixtures;
mod limits;
mod messages;
mod model;
mod retry;

use std::path::Path;

use super::*;

const KNOWN: &[&str] = &[
    "a",
    "b",
    "validate-order",
    "notify",
    "fetch-user",
    "fetch-stats",
    "alert",
    "cached-price",
    "price-line",
];

fn known(name: &str) -> bool {
    KNOWN.contains(&name)
}

fn parse(text: &str) -> Result<Flow, Vec<FlowError>> {
    parse_flow(Path::new("f.yaml"), text, Some(&known))
}

fn ok(text: &str) -> Flow {
    match parse(text) {
        Ok(f) => f,
        Err(e) => panic!(
            "expected the flow to parse: {:#?}",
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        ),
    }
}
