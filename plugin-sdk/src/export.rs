//! The glue between a [`Step`] and the generated bindings; used by
//! [`export_step!`](crate::export_step!) only.

use std::marker::PhantomData;

use crate::bindings::{self, Guest};
use crate::{Context, Step, StepError};

/// Implements the generated `Guest` trait for any [`Step`]. The export macro
/// names `Export<MyStep>` through a type alias in the step's crate.
#[derive(Debug)]
pub struct Export<S>(PhantomData<S>);

impl<S: Step> Guest for Export<S> {
    fn describe() -> bindings::Metadata {
        let m = S::metadata();
        bindings::Metadata {
            name: m.name,
            version: m.version,
            description: m.description,
        }
    }

    fn run(ctx: bindings::Context, input: String) -> Result<String, bindings::StepError> {
        let ctx = Context::new(ctx.flow, ctx.run_id, ctx.step_id, ctx.attempt, ctx.config);
        run::<S>(&ctx, &input).map_err(|e| match e {
            StepError::Transient(m) => bindings::StepError::Transient(m),
            StepError::Permanent(m) => bindings::StepError::Permanent(m),
            StepError::InvalidInput(m) => bindings::StepError::InvalidInput(m),
        })
    }
}

/// Parse, run, serialise: the whole call in SDK terms.
pub(crate) fn run<S: Step>(ctx: &Context, input: &str) -> Result<String, StepError> {
    let input: S::Input = serde_json::from_str(input).map_err(|e| {
        StepError::invalid_input(format!("input is not valid JSON for this step: {e}"))
    })?;
    let output = S::run(ctx, input)?;
    // The step produced a value it cannot express as JSON: a bug, not retryable.
    serde_json::to_string(&output)
        .map_err(|e| StepError::permanent(format!("output could not be serialised as JSON: {e}")))
}
