//! A server's part in a fleet: several servers sharing one store
//! (PostgreSQL). Runs are accepted into the shared queue by any server and
//! claimed by whichever has a free worker; a claim is held under a lease
//! this server renews.
//!
//! Three background tasks:
//! - the **claimer** claims as many runs as this server has free workers,
//!   woken by a `queued` or `finished` notice, a local run ending, or a
//!   short poll (the safety net, which also finds runs whose worker died);
//! - the **renewer** renews the leases; runs another server took over (this
//!   one stalled past its lease) are stopped without a record, and so is
//!   every run when the store stays unreachable past the lease;
//! - the **listener** hands `finished` records to this server's waiting
//!   clients and `cancel` notices to its runs.
//!
//! A run accepted here and running elsewhere is a *waiter*: a live entry
//! whose `done` sender no task took. It resolves when a `finished` notice
//! (or the poll) finds its record.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;

use super::state::{Spawn, State};
use crate::executor::{RunInput, RunRecord};
use crate::store::{Fleet, Notice, StoreError, Unfinished};

/// How often a server looks for claimable runs without a notice: runs
/// whose worker died, and notices a lost connection missed.
const POLL: Duration = Duration::from_millis(500);

/// How often waiters are checked against the store without a notice.
const RESYNC: Duration = Duration::from_secs(2);

impl State {
    /// Starts the claimer, the renewer and the listener (a shared store only).
    pub(super) fn start_fleet(self: &Arc<Self>) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let notices = fleet.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(state) = weak.upgrade() else { break };
                let woken = state.claim_wake.clone();
                drop(state);
                let polled = tokio::time::timeout(POLL, woken.notified()).await.is_err();
                let Some(state) = weak.upgrade() else { break };
                if !state.accepting.load(Ordering::SeqCst) {
                    break;
                }
                state.claim_free(fleet.as_ref(), polled).await;
            }
        });
        let weak = Arc::downgrade(self);
        let fleet = self.fleet.clone();
        tokio::spawn(async move {
            let Some(fleet) = fleet else { return };
            let mut last_ok = Instant::now();
            let mut tick = tokio::time::interval(fleet.lease() / 3);
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { break };
                state.renew(fleet.as_ref(), &mut last_ok).await;
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut notices = notices;
            let mut resync = tokio::time::interval(RESYNC);
            loop {
                let notice = tokio::select! {
                    n = notices.recv() => n,
                    _ = resync.tick() => Ok(Notice::Resync),
                };
                let Some(state) = weak.upgrade() else { break };
                match notice {
                    Ok(Notice::Queued) => state.claim_wake.notify_one(),
                    Ok(Notice::Finished(run_id)) => {
                        state.claim_wake.notify_one();
                        state.deliver(&run_id).await;
                    }
                    Ok(Notice::Cancel(run_id)) => {
                        state.cancel(&run_id);
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        state.claim_wake.notify_one();
                        for run_id in state.waiters() {
                            state.deliver(&run_id).await;
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Claims runs for every free worker, and starts them. A busy server
    /// only counts what waits, once a poll (`polled`), for the metrics.
    async fn claim_free(self: &Arc<Self>, fleet: &dyn Fleet, polled: bool) {
        loop {
            let busy = self.in_flight() + self.queued();
            let free = self.config.workers.max(1).saturating_sub(busy);
            if free == 0 {
                if !polled {
                    return;
                }
                if let Err(e) = fleet.claim(0, &Default::default()).await {
                    tracing::warn!(error = %e, "counting the runs waiting in the store failed");
                }
                return;
            }
            let claimed = match fleet.claim(free, &self.flow_limits_now()).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming runs from the store failed");
                    return;
                }
            };
            let n = claimed.len();
            let mut pins = super::versions::Pins::default();
            for run in claimed {
                self.adopt(run, &mut pins).await;
            }
            if n < free {
                return;
            }
        }
    }

    /// Each loaded flow's `concurrency.limit`, which claims keep fleet-wide.
    pub(super) fn flow_limits_now(&self) -> std::collections::HashMap<String, u32> {
        self.flows
            .all()
            .values()
            .filter_map(|f| f.concurrency.map(|limit| (f.name.clone(), limit)))
            .collect()
    }

    /// Starts a run this server claimed: new, or resumed from its journal
    /// (another worker's, which died). A run of a flow no longer loaded
    /// fails, saying so.
    pub(super) async fn adopt(self: &Arc<Self>, u: Unfinished, pins: &mut super::versions::Pins) {
        let run_id = u.run.run_id.clone();
        if self.live().get(&run_id).is_some_and(|e| e.sender.is_none()) {
            // Still running here: its lease ran out and this server claimed
            // it again; the task goes on under the new claim.
            return;
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        // A run accepted here is already live: its waiters keep their receiver.
        drop(self.register(&run_id, &u.run.flow));
        if u.cancel_requested {
            self.cancel(&run_id);
        }
        let (flow, plugins) = self.pinned(&u.run, pins).await;
        let Some(flow) = flow else {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.cannot_resume(&run_id, &u.run.flow).await;
            return;
        };
        if !u.steps.is_empty() {
            tracing::info!(run = %run_id, flow = %flow.name, journaled = u.steps.len(), "resuming a run");
        }
        self.spawn(Spawn {
            flow,
            input: Ok(RunInput::from_raw(u.run.input)),
            run_id,
            hop: u.run.hop,
            started_at: u.started_at,
            journaled: u.steps,
            plugins: Some(plugins),
            input_at: None,
        });
    }

    /// Renews this server's leases; stops the runs it lost.
    async fn renew(&self, fleet: &dyn Fleet, last_ok: &mut Instant) {
        match fleet.renew().await {
            Ok(lost) => {
                *last_ok = Instant::now();
                for run_id in lost {
                    tracing::warn!(run = %run_id, "another server took over the run (this one missed its lease): stopping it here");
                    self.lose(&run_id);
                }
            }
            Err(e) if last_ok.elapsed() >= fleet.lease() => {
                let running = self.running_here();
                if !running.is_empty() {
                    tracing::error!(error = %e, runs = running.len(), "the store is unreachable past the lease: stopping this server's runs; a server that reaches it resumes them");
                }
                for run_id in running {
                    self.lose(&run_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing this server's leases failed; retrying"),
        }
    }

    /// Hands a run that finished elsewhere to whoever waits for it here.
    async fn deliver(&self, run_id: &str) {
        if !self.is_waiter(run_id) {
            return;
        }
        let record = match self.store.run(run_id).await {
            Ok(Some(run)) => run.record,
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "reading a finished run failed");
                None
            }
        };
        if let Some(record) = record {
            self.resolve_waiter(run_id, record);
        }
    }

    /// Cancels a run no server of the fleet runs here: finished as
    /// cancelled at once when no worker holds it, else its holder is told.
    /// `Ok(true)`: it was queued.
    pub(super) async fn cancel_shared(
        &self,
        fleet: &dyn Fleet,
        run_id: &str,
        flow: &str,
    ) -> Result<bool, StoreError> {
        let record = Arc::new(RunRecord::cancelled_in_queue(run_id, flow));
        if fleet.finish_unclaimed(record.clone()).await? {
            self.resolve_waiter(run_id, record);
            return Ok(true);
        }
        fleet.request_cancel(run_id).await?;
        Ok(false)
    }
}

/// The stopped runs of a fleet, at shutdown: given back at once, so that
/// others need not wait for their leases.
pub(super) async fn release(fleet: &dyn Fleet, run_ids: &[String]) {
    if run_ids.is_empty() {
        return;
    }
    match fleet.release(run_ids).await {
        Ok(()) => tracing::info!(
            runs = run_ids.len(),
            "released this server's unfinished runs to the other servers"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "releasing runs failed: others take them when their leases expire")
        }
    }
}
