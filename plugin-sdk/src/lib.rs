//! Write flowhost steps in Rust.
//!
//! A step is a WebAssembly component exporting the `step` world of
//! `wit/step.wit`. This crate hides the component plumbing: a step is a plain
//! type implementing [`Step`], with typed JSON input and output, exported by
//! one [`export_step!`] line.
//!
//! # Writing a step
//!
//! The step crate is a `cdylib`:
//!
//! ```toml
//! [package]
//! name = "greet"
//! version = "0.1.0"
//! edition = "2024"
//! description = "Greets a person by name"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! flowhost-sdk = { path = "../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! and its `src/lib.rs` implements [`Step`]:
//!
//! ```no_run
//! use flowhost_sdk::{Context, Metadata, Step, StepError, export_step, log};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input { name: String }
//!
//! #[derive(Serialize)]
//! struct Output { greeting: String }
//!
//! #[derive(Deserialize, Default)]
//! #[serde(default)]
//! struct Config { shout: bool }
//!
//! struct Greet;
//!
//! impl Step for Greet {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn metadata() -> Metadata {
//!         flowhost_sdk::metadata!() // name, version, description from Cargo.toml
//!     }
//!
//!     fn run(ctx: &Context, input: Input) -> Result<Output, StepError> {
//!         let config: Config = ctx.config()?; // a bad config is invalid-input
//!         if input.name.is_empty() {
//!             return Err(StepError::invalid_input("name is empty"));
//!         }
//!         log::info!("greeting {} (attempt {})", input.name, ctx.attempt());
//!         let mut greeting = format!("Hello, {}!", input.name);
//!         if config.shout {
//!             greeting = greeting.to_uppercase();
//!         }
//!         flowhost_sdk::emit("greeted", &input.name)?;
//!         Ok(Output { greeting })
//!     }
//! }
//!
//! export_step!(Greet);
//! ```
//!
//! # What the SDK does for you
//!
//! - Input that is not JSON, or does not fit [`Step::Input`], is answered
//!   with `invalid-input` ("input is not valid JSON for this step: ...")
//!   without calling [`Step::run`].
//! - An output that cannot be serialised is a `permanent` error.
//! - [`Context::config`] parses the step's config; a mismatch is `invalid-input`.
//! - `?` on a `serde_json::Error` gives `invalid-input`.
//!
//! Errors are [`StepError`]s: `transient` ones may be retried by the host,
//! `permanent` and `invalid-input` ones are not.
//!
//! # Building and calling
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! flowhost call target/wasm32-wasip2/release/greet.wasm --input '{"name":"Ada"}'
//! ```
//!
//! The plugin's name is the file stem of its `.wasm`. Build in release: a
//! small step is about 100 KB there and megabytes in debug.
//!
//! The Rust standard library works as WASI allows it: `std::fs` sees only
//! the directories the host grants, `std::env::vars` only what it passes,
//! `std::thread::sleep` and clocks work, threads do not.
//!
//! # Testing natively
//!
//! [`Step::run`] is a plain function: call it from a `#[test]` with a
//! [`Context::new`]. Outside WebAssembly, logging and [`emit`] write to stderr.

#![deny(missing_docs)]

mod context;
mod emit;
mod error;
#[doc(hidden)]
pub mod export;
pub mod http;
pub mod kv;
pub mod log;
pub mod sql;
mod step;
#[cfg(test)]
mod tests;

pub use context::Context;
pub use emit::emit;
pub use error::StepError;
pub use step::{Metadata, Step};

/// Bindings generated from `wit/step.wit`; used by [`export_step!`].
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "step",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "flowhost_sdk::bindings",
    });
}

/// Exports a [`Step`] type as the component's `describe` and `run`.
/// Use it once per crate, at the top level:
///
/// ```no_run
/// # use flowhost_sdk::{Context, Metadata, Step, StepError};
/// struct Echo;
///
/// impl Step for Echo {
///     type Input = serde_json::Value;
///     type Output = serde_json::Value;
///     fn metadata() -> Metadata { Metadata::new("echo", "0.1.0", "Returns its input") }
///     fn run(_: &Context, input: Self::Input) -> Result<Self::Output, StepError> { Ok(input) }
/// }
///
/// flowhost_sdk::export_step!(Echo);
/// ```
#[macro_export]
macro_rules! export_step {
    ($step:ty) => {
        const _: () = {
            // The generated export macro wants an identifier, so name the glue type.
            type __FlowhostStepExport = $crate::export::Export<$step>;
            $crate::bindings::export! {
                __FlowhostStepExport with_types_in $crate::bindings
            }
        };
    };
}
