//! The server's state: the worker pool, per-flow concurrency, each live
//! run's handles and its life from a worker to its stored record (admission
//! is `admit.rs`). Finished runs are the store's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ServerConfig;
use super::events::RunEvents;
use crate::error::ErrorKind;
use crate::executor::{
    Executor, InputError, RunError, RunInput, RunJournal, RunOptions, RunRecord, RunStatus,
};
use crate::flow::Flow;
use crate::host::Host;
use crate::live::{LiveFlows, LivePlugins, ReloadOutcome};
use crate::metrics::Metrics;
use crate::plugin::Plugin;
use crate::registry::PluginSet;
use crate::store::{DerivedFrom, Fleet, StepEntry, Store, StoreError, StoredRun};

/// Why a run was not accepted.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The queue is full: try again later.
    QueueFull,
    /// The server is shutting down.
    ShuttingDown,
    /// The store could not commit the run.
    Store(StoreError),
}

/// A run asking to be accepted.
pub(crate) struct Admission {
    pub(crate) flow: Arc<Flow>,
    /// Its input, as it came.
    pub(crate) input: RunInput,
    /// Why its input was refused: the run then fails at once.
    pub(crate) refused: Option<InputError>,
    /// The client's `Idempotency-Key`.
    pub(crate) key: Option<String>,
    /// Set for a rerun: what it reuses of the run it reruns.
    pub(crate) rerun: Option<Rerun>,
}

/// What a rerun takes from the run it reruns.
pub(crate) struct Rerun {
    /// The run and step it derives from.
    pub(crate) from: DerivedFrom,
    /// The journaled results it reuses (of the steps before `from`).
    pub(crate) journaled: Vec<StepEntry>,
    /// A new input for the step at `from`.
    pub(crate) input_at: Option<(String, Box<serde_json::value::RawValue>)>,
}

/// What a shutdown did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Runs that finished during the drain.
    pub drained: usize,
    /// Runs cancelled mid-way when the drain deadline passed.
    pub cancelled_running: Vec<String>,
    /// Runs cancelled before they started.
    pub cancelled_queued: Vec<String>,
    /// Runs left unfinished in a durable store, queued or mid-run: the next
    /// start on the same store resumes them.
    pub left_to_resume: Vec<String>,
}

/// Resolves with the record when a run finishes.
pub(crate) type Done = watch::Receiver<Option<Arc<RunRecord>>>;

/// A live run: accepted, not finished.
pub(crate) struct RunEntry {
    pub(crate) flow: String,
    pub(crate) status: RunStatus,
    /// Whether it got a worker: a cancelled run that never did was cancelled
    /// in the queue.
    pub(crate) started: bool,
    pub(crate) cancel: CancellationToken,
    /// Stops the run without a record, leaving it to resume (shutdown).
    pub(crate) suspend: CancellationToken,
    /// Resolves with the full record when it finishes.
    pub(crate) done: Done,
    /// Its sender, until the run's task takes it.
    pub(super) sender: Option<watch::Sender<Option<Arc<RunRecord>>>>,
    /// Its journal while it runs here (a durable store): the steps it is
    /// calling now, for the UI.
    pub(super) journal: Option<Arc<RunJournal>>,
}

/// What the server knows of a run.
pub(crate) enum Lookup {
    /// Live: its flow and status.
    Live(String, RunStatus),
    /// In the store.
    Stored(StoredRun),
}

pub(crate) struct State {
    pub(crate) config: ServerConfig,
    pub(crate) exec: Executor,
    pub(crate) plugins: LivePlugins,
    pub(crate) flows: LiveFlows,
    pub(crate) probe: Plugin,
    pub(crate) metrics: Metrics,
    pub(crate) store: Arc<dyn Store>,
    /// The store's shared side, when several servers share it.
    pub(crate) fleet: Option<Arc<dyn Fleet>>,
    /// Wakes the fleet's claimer: a run was queued, or a worker is free.
    pub(super) claim_wake: Arc<tokio::sync::Notify>,
    /// Flow and plugin versions already kept in the store.
    pub(super) kept: super::versions::Kept,
    pub(crate) started: Instant,
    /// Milliseconds since `started` at the last heartbeat.
    pub(crate) heartbeat: std::sync::atomic::AtomicU64,
    live: Mutex<HashMap<String, RunEntry>>,
    pub(crate) queued: AtomicUsize,
    in_flight: AtomicUsize,
    pub(super) accepting: AtomicBool,
    workers: Arc<Semaphore>,
    flow_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub(super) tasks: TaskTracker,
}

/// A run about to be spawned: accepted now, or found unfinished in the store.
pub(super) struct Spawn {
    pub(super) flow: Arc<Flow>,
    pub(super) input: Result<RunInput, InputError>,
    pub(super) run_id: String,
    pub(super) hop: u32,
    /// When a resumed run first started.
    pub(super) started_at: Option<std::time::SystemTime>,
    /// What a resumed run's earlier life journaled.
    pub(super) journaled: Vec<StepEntry>,
    /// The plugins a resumed run started with; `None`: the loaded ones.
    pub(super) plugins: Option<PluginSet>,
    /// A rerun's new input for one step.
    pub(super) input_at: Option<(String, Box<serde_json::value::RawValue>)>,
}

impl State {
    pub(crate) fn new(
        host: Host,
        plugins: LivePlugins,
        flows: LiveFlows,
        probe: Plugin,
        store: Arc<dyn Store>,
        config: ServerConfig,
    ) -> Arc<Self> {
        Arc::new(State {
            exec: Executor::with_services(host, super::services::services(&config, &store)),
            plugins,
            flows,
            probe,
            metrics: Metrics::new(),
            fleet: store.fleet(),
            claim_wake: Default::default(),
            store,
            kept: Default::default(),
            started: Instant::now(),
            heartbeat: Default::default(),
            live: Mutex::default(),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            flow_limits: Mutex::default(),
            tasks: TaskTracker::new(),
            config,
        })
    }

    pub(super) fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunEntry>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Runs waiting to start, for the metrics and `/readyz`: this server's
    /// own, and in a fleet those waiting for any server.
    pub(crate) fn queue_depth(&self) -> usize {
        self.queued() + self.fleet.as_ref().map_or(0, |f| f.waiting())
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The flow called `name`: by file stem, else by its `flow:` name.
    pub(crate) fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows
            .get(name)
            .or_else(|| self.flows.all().into_values().find(|f| f.name == name))
    }

    /// One run: wait for a flow slot and a worker, run, record. Suspended
    /// (a shutdown with a durable store), it stops without a record: the
    /// store keeps it unfinished, to resume.
    pub(super) async fn run(
        self: Arc<Self>,
        run: Spawn,
        cancel: CancellationToken,
        suspend: CancellationToken,
        done: watch::Sender<Option<Arc<RunRecord>>>,
    ) {
        let Spawn {
            flow,
            input,
            run_id,
            hop,
            started_at,
            journaled,
            plugins,
            input_at,
        } = run;
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                let record =
                    RunRecord::not_run(run_id.clone(), &flow, RunStatus::Failed, e.to_run_error());
                self.finish(&run_id, record, done).await;
                return;
            }
        };
        let flow_slot = flow.concurrency.map(|limit| {
            let mut limits = self.flow_limits.lock().unwrap_or_else(|e| e.into_inner());
            limits
                // Keyed by the limit too: a reloaded flow with a new limit gets a new one.
                .entry(format!("{}#{limit}", flow.name))
                .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1) as usize)))
                .clone()
        });
        let permits = async {
            let flow_permit = match flow_slot {
                Some(s) => Some(s.acquire_owned().await),
                None => None,
            };
            let worker = self.workers.clone().acquire_owned().await;
            (flow_permit, worker)
        };
        let permits = tokio::select! {
            p = permits => Some(Some(p)),
            _ = cancel.cancelled() => Some(None),
            _ = suspend.cancelled() => None,
        };
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(permits) = permits else {
            self.suspended(&run_id, done);
            return;
        };
        let Some(_permits) = permits else {
            let why = "the run was cancelled before it started";
            let error = RunError::new("", ErrorKind::Cancelled, why);
            let record = RunRecord::not_run(run_id.clone(), &flow, RunStatus::Cancelled, error);
            self.finish(&run_id, record, done).await;
            return;
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.mark_started(&run_id);
        let started_at = started_at.unwrap_or_else(std::time::SystemTime::now);
        // Not waited for: a start lost in a crash only makes the resumed
        // run's deadline count from its resume.
        let (store, id) = (self.store.clone(), run_id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.started(&id, started_at).await {
                tracing::warn!(run = %id, error = %e, "the store could not mark the run started");
            }
        });
        self.metrics.run_started(&flow.name);
        // Only a durable store resumes: the memory store keeps no journal.
        let journal = self.store.durable().then(|| {
            let journal = RunJournal::new(self.store.clone(), &run_id, journaled);
            let journal = match self.fleet {
                Some(_) => journal.synchronous(),
                None => journal,
            };
            Arc::new(match input_at {
                Some((path, input)) => journal.with_input_at(path, input),
                None => journal,
            })
        });
        if let Some(e) = self.live().get_mut(&run_id) {
            e.journal = journal.clone();
        }
        let options = RunOptions {
            run_id: Some(run_id.clone()),
            cancel: Some(cancel),
            events: Some(Arc::new(RunEvents::new(&self, hop))),
            max_steps: self.config.max_steps_per_run,
            journal: journal.clone(),
            started_at: Some(started_at),
            mocks: None,
        };
        let plugins = plugins.unwrap_or_else(|| self.plugins.snapshot());
        let running = self.exec.run_input(&flow, &plugins, input, options);
        let record = tokio::select! {
            record = running => Some(record),
            _ = suspend.cancelled() => None,
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match record {
            Some(record) => {
                self.store_record(&run_id, record, journal.as_deref(), done)
                    .await
            }
            None => self.suspended(&run_id, done),
        }
    }

    /// A run stopped without a record. A shutdown leaves it to the next
    /// start (or, in a fleet, to the other servers); a fleet server that
    /// lost its claim keeps its clients waiting for whoever resumes it.
    fn suspended(&self, run_id: &str, done: watch::Sender<Option<Arc<RunRecord>>>) {
        if let Some(fleet) = self.fleet.clone()
            && self.accepting.load(Ordering::SeqCst)
        {
            tracing::info!(run = %run_id, "run stopped here: another server resumes it");
            // Its task is done: the claim it lost (or held) can go.
            let id = run_id.to_string();
            tokio::spawn(async move {
                if let Err(e) = fleet.release(std::slice::from_ref(&id)).await {
                    tracing::warn!(run = %id, error = %e, "releasing a stopped run failed: it moves when its lease expires");
                }
            });
            if let Some(e) = self.live().get_mut(run_id) {
                e.status = RunStatus::Queued;
                e.started = false;
                e.sender = Some(done);
            }
            self.claim_wake.notify_one();
            return;
        }
        tracing::info!(run = %run_id, "run suspended: it resumes at the next start");
        self.live().remove(run_id);
    }

    fn mark_started(&self, run_id: &str) {
        if let Some(e) = self.live().get_mut(run_id) {
            e.status = RunStatus::Running;
            e.started = true;
        }
    }

    /// Stores a finished run's record, then answers whoever waits for it.
    pub(super) async fn finish(
        &self,
        run_id: &str,
        record: RunRecord,
        done: watch::Sender<Option<Arc<RunRecord>>>,
    ) {
        self.store_record(run_id, record, None, done).await;
    }

    /// [`State::finish`] of a run that wrote a journal: its record is queued
    /// after its entries, and both commits are waited for together.
    async fn store_record(
        &self,
        run_id: &str,
        record: RunRecord,
        journal: Option<&RunJournal>,
        done: watch::Sender<Option<Arc<RunRecord>>>,
    ) {
        let mut record = record;
        if let Some(fleet) = &self.fleet {
            record.worker = Some(fleet.worker_id().to_string());
        }
        let record = Arc::new(record);
        let flushed = async {
            match journal {
                Some(j) => j.flush().await,
                None => Ok(()),
            }
        };
        let (stored, flushed) = tokio::join!(self.store.finish(record.clone()), flushed);
        self.claim_wake.notify_one();
        // In a fleet, a record the store did not take is not the run's end:
        // another server took it over (fenced), or will once the database is
        // back (unreachable), and writes it.
        if self.fleet.is_some()
            && let Err(StoreError::Fenced { .. } | StoreError::Unreachable { .. }) = stored
        {
            self.suspended(run_id, done);
            return;
        }
        self.metrics.run_finished(&record);
        if let Err(e) = stored {
            tracing::error!(run = %run_id, error = %e, "the store could not keep the run's record");
        }
        if let Err(e) = flushed {
            tracing::error!(run = %run_id, error = %e, "the store could not journal a step of the run");
        }
        // Stored first: a client answered with the record finds it at `GET /runs/{id}`.
        if let Some(e) = self.live().get_mut(run_id) {
            e.status = record.status;
        }
        self.live().remove(run_id);
        done.send_replace(Some(record));
    }

    /// What the server knows of a run: live, else from the store (which
    /// knows best where a fleet's waiter is).
    pub(crate) async fn lookup(&self, run_id: &str) -> Result<Option<Lookup>, StoreError> {
        if let Some(e) = self.live().get(run_id)
            && !(self.fleet.is_some() && e.sender.is_some())
        {
            return Ok(Some(Lookup::Live(e.flow.clone(), e.status)));
        }
        Ok(self.store.run(run_id).await?.map(Lookup::Stored))
    }

    /// Asks a live run to stop; its record says `cancelled`. `None`: not live.
    pub(crate) fn cancel(&self, run_id: &str) -> Option<RunStatus> {
        let live = self.live();
        let e = live.get(run_id)?;
        e.cancel.cancel();
        Some(e.status)
    }

    /// The plugin steps a run live here is calling now: (path, started
    /// milliseconds into the run, running for).
    pub(crate) fn calls_in_flight(&self, run_id: &str) -> Vec<(String, f64, std::time::Duration)> {
        self.live()
            .get(run_id)
            .and_then(|e| e.journal.clone())
            .map(|j| j.calls_in_flight())
            .unwrap_or_default()
    }

    /// Whether `run_id` is a fleet's waiter here: accepted (or stopped)
    /// here, run by whichever server claims it.
    pub(super) fn is_waiter(&self, run_id: &str) -> bool {
        self.fleet.is_some() && self.live().get(run_id).is_some_and(|e| e.sender.is_some())
    }

    /// Every waiter's run id.
    pub(super) fn waiters(&self) -> Vec<String> {
        if self.fleet.is_none() {
            return Vec::new();
        }
        let live = self.live();
        live.iter()
            .filter(|(_, e)| e.sender.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Answers a waiter with the record another server stored.
    pub(super) fn resolve_waiter(&self, run_id: &str, record: Arc<RunRecord>) {
        let mut live = self.live();
        if let Some(sender) = live.get_mut(run_id).and_then(|e| e.sender.take()) {
            live.remove(run_id);
            drop(live);
            sender.send_replace(Some(record));
        }
    }

    /// Runs this server executes (claimed, with a task).
    pub(super) fn running_here(&self) -> Vec<String> {
        let live = self.live();
        live.iter()
            .filter(|(_, e)| e.sender.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Stops a run this server lost without a record: whoever holds it now
    /// writes it.
    pub(super) fn lose(&self, run_id: &str) {
        if let Some(e) = self.live().get(run_id) {
            e.suspend.cancel();
        }
    }

    /// Fails a run that cannot resume: its flow is no longer loaded.
    pub(super) async fn cannot_resume(&self, run_id: &str, flow: &str) {
        let error = RunError::new(
            "",
            ErrorKind::Host,
            format!("the run cannot resume: flow `{flow}` is no longer loaded"),
        );
        let record = RunRecord::not_started(run_id.to_string(), flow, error);
        let done = match self.live().get_mut(run_id).and_then(|e| e.sender.take()) {
            Some(done) => done,
            None => watch::channel(None).0,
        };
        self.finish(run_id, record, done).await;
    }

    /// Feeds plugin loads (those at start, then every reload) and load
    /// errors into the metrics.
    pub(crate) async fn watch_reloads(self: &Arc<Self>) {
        let mut events = self.plugins.subscribe();
        for status in self.plugins.statuses().await {
            if let Some(ms) = status.load_ms {
                self.metrics
                    .plugin_loaded(&status.name, std::time::Duration::from_secs_f64(ms / 1e3));
            }
            if status.error.is_some() {
                self.metrics.plugin_load_failed(&status.name);
            }
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                let Some(state) = weak.upgrade() else { break };
                match &event.outcome {
                    ReloadOutcome::Loaded { load_time, .. } => {
                        state.metrics.plugin_loaded(&event.name, *load_time)
                    }
                    ReloadOutcome::Failed { .. } => state.metrics.plugin_load_failed(&event.name),
                    ReloadOutcome::Removed => {}
                }
            }
        });
    }

    /// The metrics text, with gauges read now.
    pub(crate) fn metrics_text(&self) -> String {
        let (kept, bytes) = self.store.usage();
        self.metrics.set_history(kept, bytes as usize);
        self.metrics.set_gauges(
            self.queue_depth(),
            self.in_flight(),
            self.exec.host().instances_alive(),
            &self.exec.breaker_states(),
        );
        self.metrics.encode()
    }
}
