//! The trait a step implements, and what it says about itself.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, StepError};

/// What a step says about itself (`describe` in the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Short name, usually the plugin name.
    pub name: String,
    /// The step's version.
    pub version: String,
    /// One line on what the step does.
    pub description: String,
}

impl Metadata {
    /// Metadata from its three parts. [`metadata!`](crate::metadata!) fills
    /// them from the step crate's `Cargo.toml` instead.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
        }
    }
}

/// A flow step: typed JSON in, typed JSON out.
///
/// The host passes the input as JSON; it is parsed into [`Step::Input`]
/// before [`Step::run`] is called, and a mismatch is reported to the host as
/// `invalid-input` without calling `run`. The output is serialised back to
/// JSON. Use `serde_json::Value` for free-form JSON, or
/// `Box<serde_json::value::RawValue>` to keep the text exactly as it came.
pub trait Step {
    /// The input document's type.
    type Input: DeserializeOwned;
    /// The output document's type.
    type Output: Serialize;

    /// Name, version and description; `flowhost_sdk::metadata!()` takes them
    /// from the step crate's `Cargo.toml`.
    fn metadata() -> Metadata;

    /// Runs the step once.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, StepError>;
}

/// [`Metadata`] from the calling crate's `Cargo.toml`: package name, version
/// and description.
///
/// ```no_run
/// fn metadata() -> flowhost_sdk::Metadata {
///     flowhost_sdk::metadata!()
/// }
/// ```
#[macro_export]
macro_rules! metadata {
    () => {
        $crate::Metadata::new(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
            ::core::env!("CARGO_PKG_DESCRIPTION"),
        )
    };
}
