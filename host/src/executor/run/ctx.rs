//! What every part of a run reads: the flow, the plugins, the clock, the
//! limits, and where step records go.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::records::Records;
use crate::config::{DirGrant, Grants, Limits};
use crate::error::ErrorKind;
use crate::executor::outbox::Outbox;
use crate::executor::record::RunError;
use crate::executor::scope::Scope;
use crate::executor::{Inner, Mocks, RunJournal, RunOptions};
use crate::flow::{Bounds, Flow};
use crate::registry::PluginSet;
use crate::runtime::events::EventSink;
use crate::runtime::{CallOptions, Context};

/// One run in progress.
pub(crate) struct RunCtx<'a> {
    pub(super) exec: &'a Inner,
    pub(super) flow: &'a Flow,
    pub(super) plugins: &'a PluginSet,
    pub(super) run_id: &'a str,
    pub(super) deadline: Option<Instant>,
    /// Set when the run resumed after its deadline had passed: why every
    /// step that is not replayed fails.
    expired: Option<String>,
    /// Where plugin steps' results go, and what an earlier life left there.
    pub(super) journal: Option<Arc<RunJournal>>,
    events: Option<Arc<dyn EventSink>>,
    /// Steps answered by mocks.
    pub(super) mocks: Option<Arc<Mocks>>,
    flow_dir: PathBuf,
    pub(super) records: Records,
    /// The top-level scope as the run goes, for `on_error`.
    pub(super) top: Mutex<Option<Scope>>,
}

impl<'a> RunCtx<'a> {
    /// A run that started at `started` (for a resumed run, its first start,
    /// `options.started_at`, on this process's clock).
    pub(crate) fn new(
        exec: &'a Inner,
        flow: &'a Flow,
        plugins: &'a PluginSet,
        run_id: &'a str,
        started: Instant,
        options: &RunOptions,
    ) -> Self {
        let expired = options.started_at.and_then(|at| expired(flow, at));
        let deadline = match expired {
            Some(_) => Some(Instant::now()),
            None => flow
                .timeout
                .map(|t| crate::duration::after_tokio(started, t)),
        };
        RunCtx {
            exec,
            flow,
            plugins,
            run_id,
            deadline,
            expired,
            journal: options.journal.clone(),
            events: options.events.clone(),
            mocks: options.mocks.clone(),
            flow_dir: flow
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            // One record a top-level step: no regrowth for a plain sequence.
            records: Records::new(started, flow.steps.len(), options.max_steps),
            top: Mutex::new(None),
        }
    }

    /// The step records, in start order.
    pub(crate) fn into_records(self) -> Vec<crate::executor::StepRecord> {
        self.records.into_sorted()
    }

    /// Milliseconds since the run started, as its records count them.
    pub(crate) fn elapsed_ms(&self) -> f64 {
        self.records.ms(Instant::now())
    }

    /// The time left before the flow's deadline, if it has one.
    pub(super) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The failure of a step at `path` that would run (not replayed) in a
    /// run resumed past its deadline.
    pub(super) fn expired_at(&self, path: &str) -> Option<RunError> {
        let why = self.expired.as_ref()?;
        Some(RunError::new(path, ErrorKind::Deadline, why.clone()))
    }

    /// Waits until `at`, when attempt `attempt` of the step at `path` is due
    /// (at once if it is past), unless the flow's deadline comes first: then
    /// the step fails with its last error, `last`, saying so.
    pub(super) async fn wait_for_retry(
        &self,
        path: &str,
        attempt: u32,
        last: &Option<RunError>,
        at: SystemTime,
    ) -> Result<(), RunError> {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        if self.remaining().is_some_and(|r| r <= wait) {
            let mut err = last.clone().unwrap_or_else(|| {
                RunError::new(path, ErrorKind::Deadline, "the flow's deadline passed")
            });
            err.causes.push(format!(
                "no retry: the flow's deadline comes before attempt {attempt}"
            ));
            return Err(err);
        }
        tracing::debug!(run = %self.run_id, step = %path, attempt, ?wait, "resuming a retry");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// `limits` with a timeout no later than the flow's deadline (at least
    /// 1ms, so that a call past it fails as a deadline, not as a bad limit).
    pub(super) fn within_deadline(&self, mut limits: Limits) -> Limits {
        if let Some(r) = self.remaining() {
            limits.timeout = limits.timeout.min(r.max(Duration::from_millis(1)));
        }
        limits
    }

    /// The bounds of the run's expressions: its deadline, and the default
    /// call timeout as the time limit of one evaluation.
    pub(super) fn expr_bounds(&self) -> Bounds {
        Bounds {
            // Expressions count on the wall clock: the time left, from now.
            deadline: self
                .remaining()
                .map(|r| crate::duration::after(std::time::Instant::now(), r)),
            time_limit: self.limits().timeout,
            ..Bounds::default()
        }
    }

    /// The host's default limits of a call.
    pub(super) fn limits(&self) -> &Limits {
        self.exec.host.config().default_limits()
    }

    /// The context a call of the step at `path` sees; its execution key,
    /// `<run id>/<path>`, is the same on every attempt and after a resume.
    pub(super) fn context(&self, step_id: &str, path: &str, attempt: u32, config: &str) -> Context {
        Context {
            flow: self.flow.name.clone(),
            run_id: self.run_id.to_string(),
            step_id: step_id.to_string(),
            attempt,
            config: config.to_string(),
            execution_key: format!("{}/{path}", self.run_id),
        }
    }

    /// Where the run's steps' events go.
    pub(super) fn events(&self) -> Option<Arc<dyn EventSink>> {
        self.events.clone()
    }

    /// Grants with relative directories resolved against the flow file's
    /// folder; events go to `outbox` when the step has one.
    pub(super) fn call_options(
        &self,
        grants: &Grants,
        outbox: Option<&Arc<Outbox>>,
    ) -> CallOptions {
        let dirs = grants
            .dirs
            .iter()
            .map(|d| DirGrant {
                host: if d.host.is_relative() {
                    self.flow_dir.join(&d.host)
                } else {
                    d.host.clone()
                },
                ..d.clone()
            })
            .collect();
        CallOptions {
            limits: None,
            grants: Grants {
                dirs,
                ..grants.clone()
            },
            events: match outbox {
                Some(o) => Some(o.clone() as Arc<dyn EventSink>),
                None => self.events.clone(),
            },
            services: self.exec.services.clone(),
        }
    }
}

/// Why a run of `flow` that first started at `started_at` cannot go on: its
/// `timeout` ran out while it was stopped. `None` while time is left.
fn expired(flow: &Flow, started_at: SystemTime) -> Option<String> {
    let timeout = flow.timeout?;
    let elapsed = SystemTime::now().duration_since(started_at).ok()?;
    (elapsed >= timeout).then(|| {
        format!(
            "the flow's timeout of {} ran out while the run was stopped \
             (it started at {}, {} before it resumed)",
            crate::duration::for_people(timeout),
            humantime::format_rfc3339_millis(started_at),
            crate::duration::for_people(elapsed),
        )
    })
}
