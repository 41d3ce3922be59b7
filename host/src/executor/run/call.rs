//! One guest call of a run, and where it runs: in the run's own task, or
//! on a task of its own when calls run side by side.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;

use super::ctx::RunCtx;
use crate::config::Limits;
use crate::error::{CallError, ErrorKind};
use crate::executor::data::{Data, Doc};
use crate::executor::mock::{MockAnswer, MockResult};
use crate::executor::record::{Attempt, RunError};
use crate::plugin::Plugin;
use crate::runtime::{CallOptions, CallReport, Context};

/// Where a guest call runs.
#[derive(Clone, Copy)]
pub(super) enum Spread {
    /// In the run's own task: no hand-off cost, for steps that run one at a time.
    Inline,
    /// On its own task, so that concurrent calls (parallel branches, for_each
    /// items) spread over worker threads.
    Task,
}

/// One call: what runs, on what, under which limits, and where.
pub(super) struct Call<'a> {
    pub(super) plugin: &'a Plugin,
    pub(super) ctx: Context,
    pub(super) input: &'a Doc,
    pub(super) limits: Limits,
    pub(super) options: CallOptions,
    pub(super) spread: Spread,
    /// Answers instead of the plugin, when the step is mocked.
    pub(super) mock: Option<MockAnswer>,
}

impl RunCtx<'_> {
    /// Makes attempt number `n` of the step at `path`: its output, and its
    /// record (duration, fuel, error).
    pub(super) async fn attempt<'c>(
        &'c self,
        n: u32,
        path: &str,
        mut call: Call<'c>,
    ) -> (Result<Doc, RunError>, Attempt) {
        let start = Instant::now();
        let mocked = call.mock.is_some();
        if let Some(mock) = call.mock.take() {
            match self.mocked(n, path, &call, mock).await {
                Ok(plugin) => call.plugin = plugin,
                Err(done) => return done,
            }
        }
        let flow_timeout = self.capped_by_flow(start, call.limits.timeout);
        let report = self.call(call).await;
        let result = report.result.map(Data::from_raw).map_err(|e| {
            let message = match flow_timeout {
                Some(t) if e.kind() == ErrorKind::Deadline => format!(
                    "the call ran past the flow's timeout: {}",
                    crate::duration::for_people(t)
                ),
                _ => e.message(),
            };
            RunError::new(path, e.kind(), message)
        });
        let attempt = Attempt {
            attempt: n,
            start_ms: self.records.ms(start),
            duration_ms: report.duration.as_secs_f64() * 1e3,
            fuel: Some(report.fuel_used),
            error: result.as_ref().err().map(RunError::record),
            peak_memory: Some(report.peak_memory),
            logs: report.logs,
            logs_dropped: report.logs_dropped + report.logs_not_kept,
            mocked,
        };
        (result, attempt)
    }

    /// A mocked attempt: its outcome and record after the mock's delay
    /// (bounded by the call's timeout, as a slow plugin is), or, for a mock
    /// that is a plugin, that plugin to call instead.
    async fn mocked<'p>(
        &'p self,
        n: u32,
        path: &str,
        call: &Call<'_>,
        mock: MockAnswer,
    ) -> Result<&'p Plugin, (Result<Doc, RunError>, Attempt)> {
        let start = Instant::now();
        let timeout = call.limits.timeout;
        let late = mock.delay > timeout;
        tokio::time::sleep(mock.delay.min(timeout)).await;
        let result = match mock.result {
            _ if late => Err(RunError::new(
                path,
                ErrorKind::Deadline,
                format!(
                    "the call ran past its timeout of {} (mocked)",
                    crate::duration::for_people(timeout)
                ),
            )),
            MockResult::Plugin(name) => match self.plugins.get(&name) {
                Some(plugin) => return Ok(plugin),
                None => Err(RunError::new(
                    path,
                    ErrorKind::PluginNotFound,
                    self.plugins.not_found_message(&name),
                )),
            },
            MockResult::Output(raw) => Ok(Data::from_raw(raw)),
            MockResult::Error { kind, message } => Err(RunError::new(path, kind, message)),
        };
        let attempt = Attempt {
            attempt: n,
            start_ms: self.records.ms(start),
            duration_ms: start.elapsed().as_secs_f64() * 1e3,
            fuel: Some(0),
            error: result.as_ref().err().map(RunError::record),
            mocked: true,
            ..Attempt::default()
        };
        Err((result, attempt))
    }

    /// The flow's `timeout`, if it (not the step's own) ends a call started
    /// at `start` with `timeout`: the executor cut that timeout to the time
    /// the flow had left, so the call's deadline is at or past the flow's.
    fn capped_by_flow(&self, start: Instant, timeout: Duration) -> Option<Duration> {
        let deadline = self.deadline?;
        (crate::duration::after_tokio(start, timeout) >= deadline)
            .then_some(self.flow.timeout)
            .flatten()
    }

    /// Runs one guest call. Dropping the future stops the guest at its next
    /// yield: inline, by dropping the call; on a task, by aborting it.
    async fn call(&self, call: Call<'_>) -> CallReport<Box<RawValue>> {
        let host = self.exec.host.clone();
        let plugin = call.plugin.clone();
        let ctx = Arc::new(call.ctx);
        let options = CallOptions {
            limits: Some(call.limits),
            ..call.options
        };
        if let Spread::Inline = call.spread {
            return host
                .call_raw(&plugin, &ctx, call.input.text(), &options)
                .await;
        }
        let input = call.input.clone();
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            host.call_raw(&plugin, &ctx, input.text(), &options).await
        }));
        match task.await {
            Ok(report) => report,
            Err(e) => CallReport {
                result: Err(CallError::Host(format!("the call's task failed: {e}"))),
                fuel_used: 0,
                duration: Duration::ZERO,
                peak_memory: 0,
                logs_dropped: 0,
                logs: Vec::new(),
                logs_not_kept: 0,
            },
        }
    }
}

/// A step's `config` as the JSON its context carries: `{}` when none was given.
pub(super) fn config_json(config: &Value) -> String {
    match config {
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    }
}
