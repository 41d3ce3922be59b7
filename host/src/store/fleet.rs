//! The side of a store that several servers share: which worker runs which
//! run, and the notices they send each other.
//!
//! A single-process store (memory, SQLite) has no fleet: every run a server
//! accepts is its own, and it starts it at once. A shared store (PostgreSQL)
//! has one ([`Store::fleet`](super::Store::fleet)), and then:
//!
//! - Accepting a run only queues it (under the store's queue capacity,
//!   which counts the runs waiting fleet-wide: [`StoreError::Full`]). Any worker [claims](Fleet::claim) it,
//!   the one that accepted it included; a run whose worker's lease expired
//!   is claimed the same way, and resumes from its journal.
//! - A claim is held under a lease the worker [renews](Fleet::renew). Every
//!   write about a run (`started`, `journal`, `finish`) is checked against
//!   the claim it was made under: a worker that lost its claim gets
//!   [`StoreError::Fenced`] and must stop the run without a record.
//! - Workers hear of queued, finished and cancelled runs through
//!   [`Fleet::subscribe`] without polling; a poll stays as the safety net.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use super::{StoreError, Unfinished};
use crate::executor::RunRecord;

/// What one worker tells the others (and itself) through the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Runs were queued: a worker with room claims them.
    Queued,
    /// A run finished: whoever waits for it reads its record.
    Finished(String),
    /// A run is to be cancelled: its holder cancels it.
    Cancel(String),
    /// Notices may have been missed (the listening connection was lost and
    /// is back, or a receiver lagged): check what is waited for.
    Resync,
}

/// A worker's view of the fleet it belongs to.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync + 'static {
    /// This worker's id: unique per process start.
    fn worker_id(&self) -> &str;

    /// How long a claim lasts without renewal: after it a dead worker's
    /// runs are claimed by others. Renew well within it (a third).
    fn lease(&self) -> Duration;

    /// Accepts runs as [`Store::accept`](super::Store::accept) does, and
    /// claims at once each one flagged in `claims` that is new: the
    /// accepting worker starts those itself, with no claim round trip and
    /// no wake-up of the others. Answers each run's acceptance and whether
    /// this worker holds it now.
    fn accept_claiming(
        &self,
        runs: Vec<super::NewRun>,
        claims: Vec<bool>,
    ) -> BoxFuture<'static, Result<Vec<(super::Accepted, bool)>, StoreError>>;

    /// Claims up to `max` runs, oldest first: queued runs, and unfinished
    /// runs whose lease expired (with their journal, to resume). A run of a
    /// flow in `limits` is claimed only while fewer than its limit of that
    /// flow's runs are claimed fleet-wide. A run whose cancel was asked for
    /// comes with `cancel_requested`: its claimer records it cancelled. The
    /// claimed runs' writes are fenced by this claim. Every claim counts
    /// what waits ([`Fleet::waiting`]); `max` 0 only counts.
    async fn claim(
        &self,
        max: usize,
        limits: &HashMap<String, u32>,
    ) -> Result<Vec<Unfinished>, StoreError>;

    /// Claims one queued run, as [`Fleet::claim`] would: a rerun the
    /// accepting worker starts itself, since it must journal the steps it
    /// reuses before it runs. `None`: it is held or finished already, or
    /// its flow is at its limit.
    async fn claim_run(
        &self,
        run_id: &str,
        limits: &HashMap<String, u32>,
    ) -> Result<Option<Unfinished>, StoreError>;

    /// Renews the lease of every run this worker holds. Returns the runs it
    /// believed it held and no longer does (another worker claimed them
    /// after its lease expired): stop them without a record.
    async fn renew(&self) -> Result<Vec<String>, StoreError>;

    /// Gives up runs this worker holds without finishing them (a shutdown,
    /// a stop), and forgets the claims it lost on them, once their tasks
    /// stopped: others may claim them at once. They are forgotten even when
    /// the database cannot be told (an `Err`): their leases then expire.
    async fn release(&self, run_ids: &[String]) -> Result<(), StoreError>;

    /// Finishes a run that no worker holds with `record` (a cancel of a
    /// queued run). `false`: a worker holds it, or it finished already.
    async fn finish_unclaimed(&self, record: Arc<RunRecord>) -> Result<bool, StoreError>;

    /// Asks the worker holding `run_id` to cancel it (a notice; a run
    /// claimed later is cancelled when claimed).
    async fn request_cancel(&self, run_id: &str) -> Result<(), StoreError>;

    /// Runs waiting for a claim fleet-wide, as this worker last counted them
    /// (at its last accept or claim: at most a claimer's poll old). Without
    /// waiting: for the metrics and `/readyz`.
    fn waiting(&self) -> usize;

    /// Notices from every worker of the fleet, this one's included.
    fn subscribe(&self) -> broadcast::Receiver<Notice>;
}
