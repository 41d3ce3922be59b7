//! Plugin steps: the attempts (breaker, deadline, retries with backoff),
//! fallbacks, and where each guest call runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::guard::Guard;
use super::{Failure, RunCtx, error_json, failure};
use crate::config::{Grants, Limits};
use crate::error::ErrorKind;
use crate::executor::breaker::Permit;
use crate::executor::data::{Data, Doc};
use crate::executor::record::{Attempt, ErrorRecord, FallbackRecord};
use crate::executor::scope::Scope;
use crate::flow::{PluginCall, PluginStep, Step};
use crate::runtime::{CallOptions, CallReport, Context};

impl RunCtx<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_plugin(
        &self,
        step: &Step,
        ps: &PluginStep,
        scope: &Scope,
        input: Doc,
        path: &str,
        rec: &mut Guard<'_>,
        spread: Spread,
    ) -> Result<Doc, Failure> {
        let config = config_json(&ps.config);
        let result = self
            .attempts(step, ps, &config, (scope, &input), path, rec, spread)
            .await;
        let Err(err) = result else { return result };
        let Some(fallback) = &ps.fallback else {
            return Err(err);
        };
        let fb_scope = scope.with_error(error_json(&err));
        let fb_input = match &fallback.input {
            Some(t) => Data::from_value(
                t.render_in(&fb_scope)
                    .map_err(|e| failure(path, ErrorKind::Expression, e.to_string()))?,
            ),
            None => input,
        };
        let timeout = step.timeout;
        let (result, attempt, version) = self
            .single_call(
                fallback,
                &fb_input,
                &ps.limits.apply(self.limits(), timeout),
                &ps.grants,
                path,
                spread,
            )
            .await;
        rec.record.fallback = Some(FallbackRecord {
            plugin: fallback.plugin.clone(),
            version,
            attempt,
        });
        // A recovered step keeps its own error in the record.
        rec.record.error = Some(ErrorRecord {
            kind: err.kind,
            message: err.message.clone(),
        });
        result.map_err(|mut f| {
            f.causes.insert(
                0,
                format!(
                    "step {path} failed ({}: {}), and so did its fallback {}",
                    err.kind, err.message, fallback.plugin
                ),
            );
            f
        })
    }

    /// The attempts of a plugin step: breaker, deadline, retries with backoff.
    /// `input` is the first attempt's; an `input` mapping that reads `run`
    /// is rendered again for each retry, with `run.attempt` its number.
    #[allow(clippy::too_many_arguments)]
    async fn attempts(
        &self,
        step: &Step,
        ps: &PluginStep,
        config: &str,
        (scope, input): (&Scope, &Doc),
        path: &str,
        rec: &mut Guard<'_>,
        spread: Spread,
    ) -> Result<Doc, Failure> {
        let Some(plugin) = self.plugins.get(&ps.plugin) else {
            return Err(failure(
                path,
                ErrorKind::PluginNotFound,
                self.plugins.not_found_message(&ps.plugin),
            ));
        };
        rec.record.plugin = Some(ps.plugin.clone());
        rec.record.version = Some(plugin.hash().to_string());
        let options = self.call_options(&ps.grants);
        let per_attempt = step.input.as_ref().filter(|t| t.reads("run"));
        let mut input = input.clone();
        let mut attempt = 1u32;
        loop {
            if let Some(t) = per_attempt.filter(|_| attempt > 1) {
                let rendered = t
                    .render_in(&scope.with_attempt(attempt))
                    .map_err(|e| failure(path, ErrorKind::Expression, e.to_string()))?;
                input = Data::from_value(rendered);
            }
            let remaining = self.remaining();
            if remaining.is_some_and(|r| r.is_zero()) {
                return Err(failure(
                    path,
                    ErrorKind::Deadline,
                    format!("the flow's deadline passed before attempt {attempt}"),
                ));
            }
            let permit = match &ps.circuit_breaker {
                Some(_) => self.exec.breakers.acquire(&ps.plugin),
                None => Permit::Call,
            };
            let outcome = if let Permit::Refused = permit {
                rec.record.breaker_open = true;
                Err(failure(
                    path,
                    ErrorKind::CircuitOpen,
                    format!("the circuit breaker of plugin `{}` is open", ps.plugin),
                ))
            } else {
                let per_attempt = step.timeout.unwrap_or(self.limits().timeout);
                let timeout = remaining.map_or(per_attempt, |r| r.min(per_attempt));
                let limits = ps.limits.apply(self.limits(), Some(timeout));
                let ctx = self.context(&step.id, attempt, config);
                let probe = ProbeGuard::new(self, &ps.plugin, matches!(permit, Permit::Probe));
                let start = Instant::now();
                let span =
                    tracing::info_span!("attempt", step = %path, plugin = %ps.plugin, attempt);
                let report = call(self, plugin, ctx, &input, limits, &options, spread)
                    .instrument(span)
                    .await;
                probe.done();
                let cost = (report.duration, report.fuel_used);
                let result = self.outcome(path, report.result);
                if let Some(spec) = &ps.circuit_breaker {
                    self.exec
                        .breakers
                        .record(&ps.plugin, spec, &permit, result.is_ok());
                }
                rec.record
                    .attempts
                    .push(self.attempt_record(attempt, start, cost, &result));
                result
            };
            let err = match outcome {
                Ok(doc) => return Ok(doc),
                Err(e) => e,
            };
            if attempt >= ps.retry.max_attempts || !ps.retry.should_retry(err.kind) {
                return Err(err);
            }
            let delay = ps.retry.backoff(attempt, fastrand::f64());
            if self.remaining().is_some_and(|r| r <= delay) {
                let mut err = err;
                err.causes.push(format!(
                    "no retry: the flow's deadline comes before attempt {}",
                    attempt + 1
                ));
                return Err(err);
            }
            tracing::debug!(run = %self.run_id, step = %path, attempt, ?delay, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One call of a fallback or `on_error` plugin.
    pub(super) async fn single_call(
        &self,
        call: &PluginCall,
        input: &Doc,
        limits: &Limits,
        grants: &Grants,
        path: &str,
        spread: Spread,
    ) -> (Result<Doc, Failure>, Attempt, Option<String>) {
        let start = Instant::now();
        let Some(plugin) = self.plugins.get(&call.plugin) else {
            let f = failure(
                path,
                ErrorKind::PluginNotFound,
                self.plugins.not_found_message(&call.plugin),
            );
            let attempt = Attempt {
                attempt: 1,
                start_ms: self.ms(start),
                duration_ms: 0.0,
                fuel: 0,
                error: Some(ErrorRecord {
                    kind: f.kind,
                    message: f.message.clone(),
                }),
            };
            return (Err(f), attempt, None);
        };
        let mut limits = limits.clone();
        if let Some(r) = self.remaining() {
            limits.timeout = limits.timeout.min(r.max(Duration::from_millis(1)));
        }
        let ctx = self.context(&call.plugin, 1, &config_json(&call.config));
        let report = self::call(
            self,
            plugin,
            ctx,
            input,
            limits,
            &self.call_options(grants),
            spread,
        )
        .await;
        let cost = (report.duration, report.fuel_used);
        let result = self.outcome(path, report.result);
        let attempt = self.attempt_record(1, start, cost, &result);
        (result, attempt, Some(plugin.hash().to_string()))
    }
}

/// Where a guest call runs.
#[derive(Clone, Copy)]
pub(super) enum Spread {
    /// In the run's own task: no hand-off cost, for steps that run one at a time.
    Inline,
    /// On its own task, so that concurrent calls (parallel branches, for_each
    /// items) spread over worker threads.
    Task,
}

/// Runs one guest call. Dropping the future stops the guest at its next
/// yield: inline, by dropping the call; on a task, by aborting it.
async fn call(
    ctx: &RunCtx<'_>,
    plugin: &crate::Plugin,
    call_ctx: Context,
    input: &Doc,
    limits: Limits,
    options: &CallOptions,
    spread: Spread,
) -> CallReport<Box<RawValue>> {
    let host = ctx.exec.host.clone();
    let plugin = plugin.clone();
    let call_ctx = Arc::new(call_ctx);
    let options = CallOptions {
        limits: Some(limits),
        ..options.clone()
    };
    if let Spread::Inline = spread {
        return host
            .call_raw(&plugin, &call_ctx, input.text(), &options)
            .await;
    }
    let input = input.clone();
    let task = AbortOnDropHandle::new(tokio::spawn(async move {
        host.call_raw(&plugin, &call_ctx, input.text(), &options)
            .await
    }));
    match task.await {
        Ok(report) => report,
        Err(e) => CallReport {
            result: Err(crate::error::CallError::Host(format!(
                "the call's task failed: {e}"
            ))),
            fuel_used: 0,
            duration: Duration::ZERO,
            peak_memory: 0,
            logs_dropped: 0,
        },
    }
}

/// A step's `config` as the JSON its context carries: `{}` when none was given.
fn config_json(config: &Value) -> String {
    match config {
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    }
}

/// Frees a half-open breaker's probe slot if the probe call never reports.
struct ProbeGuard<'a> {
    ctx: &'a RunCtx<'a>,
    plugin: &'a str,
    armed: bool,
}

impl<'a> ProbeGuard<'a> {
    fn new(ctx: &'a RunCtx<'a>, plugin: &'a str, armed: bool) -> Self {
        ProbeGuard { ctx, plugin, armed }
    }

    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ctx.exec.breakers.abandon(self.plugin);
        }
    }
}
