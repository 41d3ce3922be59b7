//! What a server does with its store at start and in the background:
//! resume the runs an earlier life accepted and did not finish, and prune
//! finished runs past their retention.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::{Spawn, State};
use crate::error::ErrorKind;
use crate::executor::{RunError, RunInput, RunRecord, RunStatus};
use crate::store::{Retention, StoreError};

/// How often a durable store is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl State {
    /// Starts every run the store holds unfinished, oldest first, past the
    /// queue's capacity (they were accepted already). A run whose flow is
    /// no longer loaded fails, saying so. Returns how many resumed.
    pub(crate) async fn resume(self: &Arc<Self>) -> Result<usize, StoreError> {
        if self.fleet.is_some() {
            // Shared: this server's claimer takes them, as any other's may.
            return Ok(0);
        }
        let unfinished = self.store.unfinished().await?;
        let mut resumed = 0;
        let mut pins = super::versions::Pins::default();
        for u in unfinished {
            let run_id = u.run.run_id.clone();
            self.queued.fetch_add(1, Ordering::SeqCst);
            let done = self.register(&run_id, &u.run.flow);
            drop(done);
            let (flow, plugins) = self.pinned(&u.run, &mut pins).await;
            let Some(flow) = flow else {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                self.cannot_resume(&run_id, &u.run.flow).await;
                continue;
            };
            tracing::info!(run = %run_id, flow = %flow.name, journaled = u.steps.len(), "resuming a run");
            self.spawn(Spawn {
                flow,
                input: Ok(RunInput::from_raw(u.run.input)),
                hop: u.run.hop,
                run_id,
                started_at: u.started_at,
                journaled: u.steps,
                plugins: Some(plugins),
                input_at: None,
            });
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Prunes a durable store now and every minute, in the background.
    pub(crate) fn start_pruning(self: &Arc<Self>) {
        if !self.store.durable() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { break };
                let retention = Retention {
                    max_age: state.config.retention_age,
                    max_runs: state.config.retention_runs,
                };
                match state.store.prune(retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "pruned finished runs past retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning the store failed"),
                }
            }
        });
    }
}

impl RunRecord {
    /// The record of a run that could not start at all.
    pub(super) fn not_started(run_id: String, flow: &str, error: RunError) -> RunRecord {
        RunRecord {
            run_id,
            flow: flow.to_string(),
            status: RunStatus::Failed,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0.0,
            output: None,
            output_trimmed: None,
            error: Some(error),
            steps: Vec::new(),
            worker: None,
        }
    }

    /// The record of a run cancelled before any server started it.
    pub(super) fn cancelled_in_queue(run_id: &str, flow: &str) -> RunRecord {
        let why = "the run was cancelled before it started";
        RunRecord {
            status: RunStatus::Cancelled,
            ..RunRecord::not_started(
                run_id.to_string(),
                flow,
                RunError::new("", ErrorKind::Cancelled, why),
            )
        }
    }
}
