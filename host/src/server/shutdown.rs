//! Stopping the server: no new runs, a drain of the runs in flight, then,
//! with a durable store, the rest left unfinished to resume at the next
//! start; with the memory store, the rest cancelled.

use std::sync::atomic::Ordering;

use super::state::{ShutdownReport, State};
use crate::executor::RunStatus;

impl State {
    /// Stops accepting, drains, then suspends (durable store) or cancels
    /// (memory store) what is left, and reports.
    pub(crate) async fn shutdown(&self) -> ShutdownReport {
        self.accepting.store(false, Ordering::SeqCst);
        self.tasks.close();
        let durable = self.store.durable();
        // A fleet's waiters are not this server's to stop: others run them.
        let fleet = self.fleet.is_some();
        let open = |status: RunStatus| -> Vec<String> {
            self.live()
                .iter()
                .filter(|(_, e)| e.status == status && !(fleet && e.sender.is_some()))
                .map(|(id, _)| id.clone())
                .collect()
        };
        // Queued runs never start once we stop.
        let mut queued = open(RunStatus::Queued);
        for id in &queued {
            self.stop(id, durable);
        }
        // A fleet's runs accepted here and not started anywhere stay in its
        // queue for the other servers.
        for id in self.waiters() {
            if let Ok(Some(run)) = self.store.run(&id).await
                && run.status == RunStatus::Queued
            {
                queued.push(id);
            }
        }
        let running = open(RunStatus::Running);
        let mut left = Vec::new();
        if tokio::time::timeout(self.config.drain_timeout, self.tasks.wait())
            .await
            .is_err()
        {
            for id in open(RunStatus::Running) {
                if durable {
                    tracing::warn!(run = %id, "drain deadline passed: the run is left to resume at the next start");
                } else {
                    tracing::warn!(run = %id, "drain deadline passed: cancelling the run");
                }
                self.stop(&id, durable);
                left.push(id);
            }
            self.tasks.wait().await;
        }
        let mut report = ShutdownReport {
            drained: running.len() - left.len(),
            ..ShutdownReport::default()
        };
        if durable {
            report.left_to_resume = queued.into_iter().chain(left).collect();
            if let Some(fleet) = &self.fleet {
                super::fleet::release(fleet.as_ref(), &report.left_to_resume).await;
            }
        } else {
            for id in &queued {
                tracing::warn!(run = %id, "queued run cancelled by shutdown: it never started");
            }
            report.cancelled_queued = queued;
            report.cancelled_running = left;
        }
        tracing::info!(
            drained = report.drained,
            cancelled_running = report.cancelled_running.len(),
            cancelled_queued = report.cancelled_queued.len(),
            left_to_resume = report.left_to_resume.len(),
            "shutdown complete"
        );
        report
    }

    /// Stops a live run: suspended without a record, or cancelled.
    fn stop(&self, run_id: &str, suspend: bool) {
        if let Some(e) = self.live().get(run_id) {
            if suspend {
                e.suspend.cancel();
            } else {
                e.cancel.cancel();
            }
        }
    }
}
