//! Plugin steps: the attempts (breaker, deadline, retries with backoff), and
//! the fallback when they all fail.

use std::sync::Arc;
use tokio::time::Instant;

use tracing::Instrument;

use super::call::{Call, Spread, config_json};
use super::ctx::RunCtx;
use super::records::{AttemptGuard, AttemptSlot, Guard};
use crate::config::{Grants, Limits};
use crate::error::ErrorKind;
use crate::executor::breaker::{Breakers, Permit};
use crate::executor::data::{Data, Doc};
use crate::executor::mock::{MockAnswer, MockRole};
use crate::executor::outbox::Outbox;
use crate::executor::record::{Attempt, RunError, StepRecord, StepStatus};
use crate::executor::scope::Scope;
use crate::flow::{PluginCall, PluginStep, Step};

/// A plugin step about to run: what every attempt needs besides its input.
pub(super) struct PluginRun<'a> {
    pub(super) step: &'a Step,
    pub(super) plugin: &'a PluginStep,
    /// What the step's expressions see.
    pub(super) scope: &'a Scope,
    /// The step's id path, for example `lines[3].price`.
    pub(super) path: &'a str,
    pub(super) spread: Spread,
    /// Holds the step's events until its result is journaled.
    pub(super) outbox: Option<Arc<Outbox>>,
}

impl RunCtx<'_> {
    /// A plugin step: its attempts, then its fallback if they fail.
    pub(super) async fn run_plugin(
        &self,
        at: &PluginRun<'_>,
        input: Doc,
        rec: &mut Guard<'_>,
    ) -> Result<Doc, RunError> {
        let result = self.attempts(at, &input, rec).await;
        let Err(err) = result else { return result };
        let Some(fallback) = &at.plugin.fallback else {
            return Err(err);
        };
        let fb_input = match &fallback.input {
            Some(t) => Data::from_value(
                t.render_bounded(at.scope.with_error(err.to_value()), &self.expr_bounds())
                    .await
                    .map_err(|e| RunError::new(at.path, e.kind, e.to_string()))?,
            ),
            None => input,
        };
        // A recovered step keeps its own error in the record, and so does
        // one cancelled while its fallback runs.
        rec.record.error = Some(err.record());
        let one = SingleCall {
            call: fallback,
            role: Single::Fallback {
                step_id: &at.step.id,
            },
            input: &fb_input,
            limits: self.within_deadline(at.plugin.limits.apply(self.limits(), at.step.timeout)),
            grants: &at.plugin.grants,
            path: at.path,
            spread: at.spread,
            outbox: at.outbox.as_ref(),
        };
        let result = self.single_call(one, &mut rec.record).await;
        result.map_err(|mut f| {
            f.causes.insert(
                0,
                format!(
                    "step {} failed ({}: {}), and so did its fallback {}",
                    at.path, err.kind, err.message, fallback.plugin
                ),
            );
            f
        })
    }

    /// The attempts of a plugin step: breaker, deadline, retries with backoff.
    /// `input` is the first attempt's; an `input` mapping that reads `run`
    /// is rendered again for each retry, with `run.attempt` its number.
    async fn attempts(
        &self,
        at: &PluginRun<'_>,
        input: &Doc,
        rec: &mut Guard<'_>,
    ) -> Result<Doc, RunError> {
        let (ps, path) = (at.plugin, at.path);
        let Some(plugin) = self.plugins.get(&ps.plugin) else {
            return Err(RunError::new(
                path,
                ErrorKind::PluginNotFound,
                self.plugins.not_found_message(&ps.plugin),
            ));
        };
        rec.record.plugin = Some(ps.plugin.clone());
        rec.record.version = Some(plugin.hash().to_string());
        let config = config_json(&ps.config);
        let options = self.call_options(&ps.grants, at.outbox.as_ref());
        let per_attempt = at.step.input.as_ref().filter(|t| t.reads("run"));
        let mut input = input.clone();
        let mut attempt = 1u32;
        // The last failed call: a breaker that opens mid-retry keeps it as a cause.
        let mut last: Option<RunError> = None;
        // A retry an earlier life of the run was waiting for resumes on time.
        if let Some(resume) = self.journal.as_ref().and_then(|j| j.resume(path)) {
            rec.record.start_ms = resume.record.start_ms;
            rec.record.attempts = resume.record.attempts;
            rec.record.breaker_open = resume.record.breaker_open;
            (attempt, last) = (resume.next, resume.last);
            self.wait_for_retry(path, attempt, &last, resume.retry_at)
                .await?;
        }
        loop {
            if let Some(t) = per_attempt.filter(|_| attempt > 1) {
                let rendered = t
                    .render_bounded(at.scope.with_attempt(attempt), &self.expr_bounds())
                    .await
                    .map_err(|e| RunError::new(path, e.kind, e.to_string()))?;
                input = Data::from_value(rendered);
            }
            let remaining = self.remaining();
            if remaining.is_some_and(|r| r.is_zero()) {
                return Err(RunError::new(
                    path,
                    ErrorKind::Deadline,
                    format!("the flow's deadline passed before attempt {attempt}"),
                ));
            }
            // Every step on a plugin sees its breaker, with or without settings.
            let breaker = ps.circuit_breaker.as_ref();
            let permit = self.exec.breakers.acquire(&ps.plugin, breaker.is_some());
            let outcome = if let Permit::Refused = permit {
                rec.record.breaker_open = true;
                Err(refused(path, &ps.plugin, attempt, last.take()))
            } else {
                let per_attempt = at.step.timeout.unwrap_or(self.limits().timeout);
                let timeout = remaining.map_or(per_attempt, |r| r.min(per_attempt));
                let call = Call {
                    plugin,
                    ctx: self.context(&at.step.id, path, attempt, &config),
                    input: &input,
                    limits: ps.limits.apply(self.limits(), Some(timeout)),
                    options: options.clone(),
                    spread: at.spread,
                    mock: self.mock(path, &at.step.id, MockRole::Step, attempt),
                };
                let probe = ProbeGuard::new(
                    &self.exec.breakers,
                    &ps.plugin,
                    matches!(permit, Permit::Probe),
                );
                let span =
                    tracing::info_span!("attempt", step = %path, plugin = %ps.plugin, attempt);
                let slot = AttemptSlot::Attempts(&mut rec.record.attempts);
                let pending = AttemptGuard::start(&self.records, slot, attempt);
                let (result, record) = self.attempt(attempt, path, call).instrument(span).await;
                probe.done();
                self.exec
                    .breakers
                    .record(&ps.plugin, breaker, &permit, result.is_ok());
                pending.finish(record);
                result
            };
            let err = match outcome {
                Ok(doc) => return Ok(doc),
                Err(e) => e,
            };
            if err.kind != ErrorKind::CircuitOpen {
                last = Some(err.clone());
            }
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
            if let Some(journal) = &self.journal {
                let state = rec.snapshot(StepStatus::Failed, Some(&err));
                journal.retry_in(state, delay).await?;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One call of a fallback or `on_error` plugin, under its `limits` as
    /// given, with no retry and no breaker. Its attempt and plugin version go
    /// to `rec` (see [`Single`]), also when the call is cancelled midway.
    pub(super) async fn single_call(
        &self,
        one: SingleCall<'_>,
        rec: &mut StepRecord,
    ) -> Result<Doc, RunError> {
        let plugin = self.plugins.get(&one.call.plugin);
        let version = plugin.map(|p| p.hash().to_string());
        let mock = match one.role {
            Single::Fallback { step_id } => self.mock(one.path, step_id, MockRole::Fallback, 1),
            Single::OnError => self.mock("on_error", "on_error", MockRole::Step, 1),
        };
        let (step_id, slot) = match one.role {
            Single::Fallback { step_id } => (
                step_id,
                AttemptSlot::Fallback {
                    entry: &mut rec.fallback,
                    plugin: &one.call.plugin,
                    version,
                },
            ),
            Single::OnError => {
                rec.version = version;
                ("on_error", AttemptSlot::Attempts(&mut rec.attempts))
            }
        };
        let pending = AttemptGuard::start(&self.records, slot, 1);
        let Some(plugin) = plugin else {
            let f = RunError::new(
                one.path,
                ErrorKind::PluginNotFound,
                self.plugins.not_found_message(&one.call.plugin),
            );
            pending.finish(Attempt {
                attempt: 1,
                start_ms: self.records.ms(Instant::now()),
                duration_ms: 0.0,
                fuel: Some(0),
                error: Some(f.record()),
                ..Attempt::default()
            });
            return Err(f);
        };
        let call = Call {
            plugin,
            ctx: self.context(step_id, one.path, 1, &config_json(&one.call.config)),
            input: one.input,
            limits: one.limits,
            options: self.call_options(one.grants, one.outbox),
            spread: one.spread,
            mock,
        };
        let (result, attempt) = self.attempt(1, one.path, call).await;
        pending.finish(attempt);
        result
    }
}

impl RunCtx<'_> {
    /// The mock answering attempt `attempt` of the step at `path` (id `id`)
    /// in `role`, when the run has one.
    fn mock(&self, path: &str, id: &str, role: MockRole, attempt: u32) -> Option<MockAnswer> {
        self.mocks.as_ref()?.answer(path, id, role, attempt)
    }
}

/// What a single call stands for: it decides the step id its plugin sees
/// and where its attempt is recorded.
pub(super) enum Single<'a> {
    /// The fallback of the step `step_id`: its plugin sees that id, the
    /// step's execution key and attempt 1; its attempt is the step record's
    /// `fallback` entry.
    Fallback { step_id: &'a str },
    /// The flow's `on_error` handler: its plugin sees step id `on_error`
    /// (and execution key `<run id>/on_error`);
    /// its attempt and version are those of its own record.
    OnError,
}

/// One call of a fallback or `on_error` plugin.
pub(super) struct SingleCall<'a> {
    pub(super) call: &'a PluginCall,
    pub(super) role: Single<'a>,
    pub(super) input: &'a Doc,
    pub(super) limits: Limits,
    pub(super) grants: &'a Grants,
    /// The path its failure names: its step's, or `on_error`.
    pub(super) path: &'a str,
    pub(super) spread: Spread,
    /// Its step's outbox (a fallback of a journaled step).
    pub(super) outbox: Option<&'a Arc<Outbox>>,
}

/// The error of attempt `attempt`, refused by the open breaker of `plugin`;
/// when an earlier attempt's failure opened it, that failure's causes follow.
fn refused(path: &str, plugin: &str, attempt: u32, last: Option<RunError>) -> RunError {
    let mut err = RunError::new(
        path,
        ErrorKind::CircuitOpen,
        format!("the circuit breaker of plugin `{plugin}` is open"),
    );
    if let Some(last) = last {
        err.message = format!(
            "{} (after attempt {} failed: {}: {})",
            err.message,
            attempt - 1,
            last.kind,
            last.message
        );
        err.causes = vec![format!("step {path}: {}: {}", err.kind, err.message)];
        err.causes.extend(last.causes);
    }
    err
}

/// Frees a half-open breaker's probe slot if the probe call never reports.
struct ProbeGuard<'a> {
    breakers: &'a Breakers,
    plugin: &'a str,
    armed: bool,
}

impl<'a> ProbeGuard<'a> {
    fn new(breakers: &'a Breakers, plugin: &'a str, armed: bool) -> Self {
        ProbeGuard {
            breakers,
            plugin,
            armed,
        }
    }

    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breakers.abandon(self.plugin);
        }
    }
}
