//! A whole run: the top-level sequence under the flow's deadline, and the
//! `on_error` handler when it fails.

use std::time::Duration;

use serde_json::json;
use serde_json::value::RawValue;

use super::call::Spread;
use super::ctx::RunCtx;
use super::plugin::{Single, SingleCall};
use super::records::Guard;
use crate::config::Grants;
use crate::error::ErrorKind;
use crate::executor::data::{Data, Doc};
use crate::executor::record::{RunError, StepStatus, StepType};
use crate::executor::scope::Scope;
use crate::flow::Bounds;

impl RunCtx<'_> {
    /// Runs the flow on `input`, checked where it entered: its output, or
    /// why it failed.
    pub(crate) async fn run_flow(&self, input: Doc) -> Result<Box<RawValue>, RunError> {
        if let Some(journal) = &self.journal {
            journal.run_input(&input);
        }
        let scope = Scope::new(input.clone(), self.run_id, &self.flow.name);
        let steps = self.run_steps(&self.flow.steps, scope, input, "", Spread::Inline);
        let result = match self.deadline {
            // A backstop: every attempt is already bounded by the time left.
            Some(d) => {
                let backstop = crate::duration::after_tokio(d, Duration::from_millis(100));
                match tokio::time::timeout_at(backstop, steps).await {
                    Ok(r) => r,
                    Err(_) => Err(RunError::new(
                        "",
                        ErrorKind::Deadline,
                        "the flow ran past its deadline",
                    )),
                }
            }
            None => steps.await,
        };
        match result {
            Ok(out) => Ok(out.into_raw()),
            Err(e) => {
                self.on_error(&e).await;
                Err(e)
            }
        }
    }

    /// Runs the flow's `on_error` handler, if it has one, with the error.
    async fn on_error(&self, err: &RunError) {
        let Some(call) = &self.flow.on_error else {
            return;
        };
        let mut rec = Guard::new(&self.records, "on_error", StepType::Plugin);
        rec.record.plugin = Some(call.plugin.clone());
        let record = err.to_value();
        let scope = self.top.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // The handler runs after the run failed, perhaps at its deadline:
        // its input is bounded by the time limit alone.
        let bounds = Bounds {
            deadline: None,
            ..self.expr_bounds()
        };
        let input = match (&call.input, scope) {
            (Some(t), Some(scope)) => {
                t.render_bounded(scope.with_error(record.clone()), &bounds)
                    .await
            }
            (Some(t), None) => {
                let scope = json!({"input": null, "steps": {}, "error": record});
                t.render_bounded(scope, &bounds).await
            }
            (None, _) => Ok(record),
        };
        let input = match input {
            Ok(v) => Data::from_value(v),
            Err(e) => {
                let f = RunError::new("on_error", e.kind, e.to_string());
                rec.finish(StepStatus::Failed, Some(&f));
                return;
            }
        };
        // Outside the flow's deadline: a timed-out run is when an alert
        // matters most. The host's default limits bound it instead.
        let grants = Grants::default();
        let one = SingleCall {
            call,
            role: Single::OnError,
            input: &input,
            limits: self.limits().clone(),
            grants: &grants,
            path: "on_error",
            spread: Spread::Inline,
            outbox: None,
        };
        match self.single_call(one, &mut rec.record).await {
            Ok(_) => rec.finish(StepStatus::Succeeded, None),
            Err(f) => {
                tracing::warn!(run = %self.run_id, error = %crate::printable::printable(&f.to_string()), "on_error handler failed");
                rec.finish(StepStatus::Failed, Some(&f));
            }
        }
    }
}
