//! The executor: runs a [`Flow`] against a [`PluginSet`] and produces a
//! [`RunRecord`].
//!
//! Steps run sequentially by default; `parallel` branches and `for_each`
//! items (at most `max_concurrency` at once) run concurrently. A guest call
//! of a step that runs alone runs inside the run's own future, with no
//! hand-off; a call of a branch or an item is spawned on its own tokio task,
//! so that CPU-bound steps spread over worker threads. Either way, dropping
//! the run (cancel, fail-fast, timeout) drops the call, or aborts its task
//! through an abort-on-drop handle, and the guest stops at its next yield.
//!
//! Time: a flow `timeout` is a deadline for the whole run; every attempt gets
//! `min(step timeout, time left)`, and a retry never starts past the deadline.
//! Circuit breakers are per plugin and shared by every step and every run
//! of one executor (see `breaker`). Records, deadlines, backoffs and
//! breakers count on tokio's clock: the wall clock, unless a test paused it
//! (`flowhost test`), when waits take no wall time and records keep their
//! nominal times.
//!
//! Mocks: [`RunOptions::mocks`] answers chosen calls instead of their
//! plugins (see [`Mocks`]).
//!
//! Durability: with a [`RunJournal`], every plugin step's result is journaled
//! in a store as it completes, and a run resumed with the entries of an
//! earlier life replays them instead of calling those steps again (see
//! [`journal`](self::journal)).

mod breaker;
mod data;
mod input;
mod journal;
mod mock;
mod outbox;
mod record;
mod run;
mod scope;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use breaker::BreakerState;
pub use input::{InputError, RunInput};
pub use journal::RunJournal;
pub use mock::{Mock, MockAnswer, MockResult, Mocks};
pub use record::{
    Attempt, ErrorRecord, FallbackRecord, OutputTrimmed, RunError, RunRecord, RunStatus,
    StepRecord, StepStatus, StepType,
};

use crate::flow::Flow;
use crate::host::Host;
use crate::registry::PluginSet;
use crate::runtime::events::EventSink;

/// Runs flows. Cheap to clone; clones share circuit breakers.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("breakers", &self.breaker_states())
            .finish_non_exhaustive()
    }
}

struct Inner {
    host: Host,
    breakers: breaker::Breakers,
    /// The databases and key-value state steps' grants name.
    services: crate::Services,
}

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// The run id; when `None`, the journal's, else a fresh one.
    pub run_id: Option<String>,
    /// Cancels the run, stopping its running guest calls.
    pub cancel: Option<CancellationToken>,
    /// Where steps' `emit`ted events go.
    pub events: Option<Arc<dyn EventSink>>,
    /// The most steps the run may start: plugin steps, composite steps,
    /// branches, the steps of a switch case and of every for_each item
    /// (`on_error` aside). Past it the run fails with `too-many-steps`; a
    /// for_each whose items would pass it fails before any item runs.
    /// Default: [`RunOptions::DEFAULT_MAX_STEPS`].
    pub max_steps: usize,
    /// Journals every plugin step's result as it completes, and replays the
    /// results an earlier life of the run journaled.
    pub journal: Option<Arc<RunJournal>>,
    /// When the run first started, for a run resumed after a stop: its flow
    /// `timeout` and every time in its record count from then, so the
    /// deadline counts wall time across restarts. `None`: now.
    pub started_at: Option<SystemTime>,
    /// Steps answered by mocks instead of their plugins (`flowhost test`).
    pub mocks: Option<Arc<Mocks>>,
}

impl RunOptions {
    /// The default cap on the steps of one run: 10,000.
    pub const DEFAULT_MAX_STEPS: usize = 10_000;
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_id: None,
            cancel: None,
            events: None,
            max_steps: Self::DEFAULT_MAX_STEPS,
            journal: None,
            started_at: None,
            mocks: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("run_id", &self.run_id)
            .field("cancel", &self.cancel)
            .field("events", &self.events.is_some())
            .field("max_steps", &self.max_steps)
            .field("journal", &self.journal)
            .field("started_at", &self.started_at)
            .field("mocks", &self.mocks)
            .finish()
    }
}

impl Executor {
    /// An executor calling steps through `host`.
    pub fn new(host: Host) -> Self {
        Executor {
            inner: Arc::new(Inner {
                host,
                breakers: breaker::Breakers::default(),
                services: crate::Services::default(),
            }),
        }
    }

    /// An executor whose steps reach `services` (databases, key-value state)
    /// where their grants allow. Default: none, so every such call is denied.
    pub fn with_services(host: Host, services: crate::Services) -> Self {
        Executor {
            inner: Arc::new(Inner {
                host,
                breakers: breaker::Breakers::default(),
                services,
            }),
        }
    }

    /// The host that runs the steps.
    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    /// The state of every plugin's circuit breaker that has been used.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.inner.breakers.snapshot()
    }

    /// Runs `flow` on a value, for an embedder that holds one: the value is
    /// checked against the flow's `input_schema` (a mismatch fails the run
    /// at step `input` with `invalid-input`), then serialised once for the
    /// first step. Never panics on user input: every failure is in the record.
    pub async fn run(
        &self,
        flow: &Flow,
        plugins: &PluginSet,
        input: Value,
        options: RunOptions,
    ) -> RunRecord {
        self.run_input(flow, plugins, RunInput::from_value(input), options)
            .await
    }

    /// Runs `flow` on an input read where it entered. The input is checked
    /// against the flow's `input_schema` ([`RunInput::check`]; free when the
    /// caller already did, as the server does to answer 422) and then not
    /// parsed, checked or serialised again: the first step gets its text as it
    /// is. Never panics on user input: every failure is in the record.
    pub async fn run_input(
        &self,
        flow: &Flow,
        plugins: &PluginSet,
        mut input: RunInput,
        options: RunOptions,
    ) -> RunRecord {
        let run_id = options
            .run_id
            .clone()
            .or_else(|| options.journal.as_ref().map(|j| j.run_id().to_string()))
            .unwrap_or_else(new_run_id);
        if let Err(e) = input.check(flow) {
            return RunRecord::not_run(run_id, flow, RunStatus::Failed, e.to_run_error());
        }
        let (started, first) = first_start(options.started_at);
        let started_at = humantime::format_rfc3339_millis(first).to_string();
        let run_id_ref = run_id.clone();
        let ctx = run::RunCtx::new(&self.inner, flow, plugins, &run_id_ref, started, &options);
        // The run id is the correlation id of every log line of the run.
        let span = tracing::info_span!("run", run = %run_id, flow = %flow.name);
        let run = ctx.run_flow(input.into_doc()).instrument(span);
        // Cancelled: `Err(when)`, in ms since the start. The run's future is
        // dropped at the end of its block, which records the steps still
        // running as cancelled, ending after that instant.
        let outcome = match &options.cancel {
            Some(token) => {
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => Ok(r),
                    _ = token.cancelled() => Err(ctx.elapsed_ms()),
                }
            }
            None => Ok(run.await),
        };
        let steps = ctx.into_records();
        let (result, status) = match outcome {
            Ok(result) => (result, None),
            Err(at) => {
                let running = record::running_at(&steps, at);
                (
                    Err(RunError::cancelled(&running)),
                    Some(RunStatus::Cancelled),
                )
            }
        };
        let (output, error) = match result {
            Ok(out) => (Some(out), None),
            Err(e) => (None, Some(e)),
        };
        let status = status.unwrap_or(if error.is_none() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        });
        RunRecord {
            run_id,
            flow: flow.name.clone(),
            status,
            started_at,
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            output,
            output_trimmed: None,
            error,
            steps,
            worker: None,
        }
    }
}

/// When the run first started, on this process's clock and on the wall
/// clock: `started_at` (moved back by the time since then), or now.
fn first_start(started_at: Option<SystemTime>) -> (Instant, SystemTime) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let Some(at) = started_at else {
        return (now, wall);
    };
    let earlier = wall.duration_since(at).unwrap_or_default();
    // A start before the clock can count from is taken as now; a run
    // resumed past its deadline fails on the wall clock all the same.
    (now.checked_sub(earlier).unwrap_or(now), at)
}

/// A fresh run id: a UUIDv7, ordered by time, so that a store's indexes on
/// run ids grow at their end instead of being written all over, and with 74
/// random bits, so that ids (which address `/runs/{id}/cancel`) cannot be
/// guessed.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
