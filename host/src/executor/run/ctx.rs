//! What every part of a run reads: the flow, the plugins, the clock, the
//! limits, and where step records go.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::records::Records;
use crate::config::{DirGrant, Grants, Limits};
use crate::executor::scope::Scope;
use crate::executor::{Inner, RunOptions};
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
    events: Option<Arc<dyn EventSink>>,
    flow_dir: PathBuf,
    pub(super) records: Records,
    /// The top-level scope as the run goes, for `on_error`.
    pub(super) top: Mutex<Option<Scope>>,
}

impl<'a> RunCtx<'a> {
    pub(crate) fn new(
        exec: &'a Inner,
        flow: &'a Flow,
        plugins: &'a PluginSet,
        run_id: &'a str,
        started: Instant,
        options: &RunOptions,
    ) -> Self {
        RunCtx {
            exec,
            flow,
            plugins,
            run_id,
            deadline: flow.timeout.map(|t| crate::duration::after(started, t)),
            events: options.events.clone(),
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
            deadline: self.deadline,
            time_limit: self.limits().timeout,
            ..Bounds::default()
        }
    }

    /// The host's default limits of a call.
    pub(super) fn limits(&self) -> &Limits {
        self.exec.host.config().default_limits()
    }

    /// The context a step's call sees.
    pub(super) fn context(&self, step_id: &str, attempt: u32, config: &str) -> Context {
        Context {
            flow: self.flow.name.clone(),
            run_id: self.run_id.to_string(),
            step_id: step_id.to_string(),
            attempt,
            config: config.to_string(),
        }
    }

    /// Grants with relative directories resolved against the flow file's folder.
    pub(super) fn call_options(&self, grants: &Grants) -> CallOptions {
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
            events: self.events.clone(),
        }
    }
}
