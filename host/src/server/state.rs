//! The server's state: admission into the bounded queue (committed to the
//! store before a client is answered), the worker pool, per-flow
//! concurrency, and each live run's handles. Finished runs are the store's.

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
    new_run_id,
};
use crate::flow::Flow;
use crate::host::Host;
use crate::live::{LiveFlows, LivePlugins, ReloadOutcome};
use crate::metrics::Metrics;
use crate::plugin::Plugin;
use crate::registry::PluginSet;
use crate::store::{Accepted, DerivedFrom, NewRun, StepEntry, Store, StoreError, StoredRun};

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
    /// Its input, or why it was refused (the run then fails at once).
    pub(crate) input: Result<RunInput, InputError>,
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
    sender: Option<watch::Sender<Option<Arc<RunRecord>>>>,
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
            exec: Executor::new(host),
            plugins,
            flows,
            probe,
            metrics: Metrics::new(),
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

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The flow called `name`: by file stem, else by its `flow:` name.
    pub(crate) fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows
            .get(name)
            .or_else(|| self.flows.all().into_values().find(|f| f.name == name))
    }

    /// Accepts runs, all or none: `n` queue places are taken at once, so an
    /// event is never half-accepted, then the runs are committed to the
    /// store, and only then started and answered. A run refused for its
    /// input is accepted and fails at once. An event that starts more runs
    /// than the queue holds is accepted whole when the queue is empty, so
    /// that a retry can always get past a `429`. A run whose idempotency key
    /// its flow already used is not started again: its answer is that run.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        runs: Vec<Admission>,
        hop: u32,
    ) -> Result<Vec<(String, Done)>, Refusal> {
        self.reserve(runs.len())?;
        self.commit(runs, hop).await
    }

    /// Commits runs whose queue places [`State::reserve`] took, then starts
    /// them; on a store failure the places are given back.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        runs: Vec<Admission>,
        hop: u32,
    ) -> Result<Vec<(String, Done)>, Refusal> {
        let n = runs.len();
        // Runs with no idempotency key and no rerun are always new: they
        // start while their acceptance commits (it is queued first, so
        // everything they write commits after it); the caller is answered
        // once it has.
        let early = runs.iter().all(|r| r.key.is_none() && r.rerun.is_none());
        let accepted_at = std::time::SystemTime::now();
        let snapshot = self.plugins.snapshot();
        let mut pending = Vec::with_capacity(n);
        let mut new_runs = Vec::with_capacity(n);
        for run in runs {
            let run_id = new_run_id();
            let input_text = match &run.input {
                Ok(input) => input.get().to_string(),
                Err(_) => "null".to_string(),
            };
            let plugins = run
                .flow
                .plugin_names()
                .into_iter()
                .filter_map(|name| snapshot.get(name))
                .map(|p| (p.name().to_string(), p.hash().to_string()))
                .collect();
            if let Err(e) = self.keep_versions(&run.flow, &plugins).await {
                for (_, _, run_id, _, _) in &pending {
                    self.live().remove(run_id);
                }
                self.live().remove(&run_id);
                self.queued.fetch_sub(n, Ordering::SeqCst);
                return Err(Refusal::Store(e));
            }
            new_runs.push(NewRun {
                run_id: run_id.clone(),
                flow: run.flow.name.clone(),
                flow_version: run.flow.hash().to_string(),
                plugins,
                input: serde_json::value::RawValue::from_string(input_text)
                    .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
                accepted_at,
                idempotency_key: run.key,
                derived_from: run.rerun.as_ref().map(|r| r.from.clone()),
            });
            // Live before it is committed: a concurrent submission with the
            // same key finds it as soon as the store answers `Existing`.
            let done = self.register(&run_id, &run.flow.name);
            pending.push((run.flow, run.input, run_id, done, run.rerun));
        }
        let accepting = self.store.accept(new_runs);
        if early {
            let mut out = Vec::with_capacity(n);
            for (flow, input, run_id, done, _) in pending {
                self.spawn(Spawn {
                    flow,
                    input,
                    run_id: run_id.clone(),
                    hop,
                    started_at: None,
                    journaled: Vec::new(),
                    plugins: None,
                    input_at: None,
                });
                out.push((run_id, done));
            }
            return match accepting.await {
                Ok(_) => Ok(out),
                Err(e) => {
                    // Never accepted: stopped (their tasks give back their
                    // queue places), and the caller told.
                    for (run_id, _) in &out {
                        self.cancel(run_id);
                    }
                    Err(Refusal::Store(e))
                }
            };
        }
        let answers = match accepting.await {
            Ok(answers) => answers,
            Err(e) => {
                for (_, _, run_id, _, _) in &pending {
                    self.live().remove(run_id);
                }
                self.queued.fetch_sub(n, Ordering::SeqCst);
                return Err(Refusal::Store(e));
            }
        };
        let mut out = Vec::with_capacity(n);
        for ((flow, input, run_id, done, rerun), answer) in pending.into_iter().zip(answers) {
            match answer {
                Accepted::New => {
                    let (journaled, input_at) = match rerun {
                        Some(r) => (self.reuse(&run_id, r.journaled).await, r.input_at),
                        None => (Vec::new(), None),
                    };
                    self.spawn(Spawn {
                        flow,
                        input,
                        run_id: run_id.clone(),
                        hop,
                        started_at: None,
                        journaled,
                        plugins: None,
                        input_at,
                    });
                    out.push((run_id, done));
                }
                Accepted::Existing { run_id: existing } => {
                    self.live().remove(&run_id);
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    out.push((existing.clone(), self.done_of(&existing).await));
                }
            }
        }
        Ok(out)
    }

    /// Takes `n` queue places, all or none.
    pub(crate) fn reserve(&self, n: usize) -> Result<(), Refusal> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(Refusal::ShuttingDown);
        }
        let capacity = self.config.queue_capacity;
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q + n <= capacity || q == 0).then_some(q + n)
            })
            .map(drop)
            .map_err(|_| Refusal::QueueFull)
    }

    /// Makes `run_id` a live, queued run; returns its `done` receiver.
    pub(super) fn register(&self, run_id: &str, flow: &str) -> Done {
        let (tx, rx) = watch::channel(None);
        self.live().insert(
            run_id.to_string(),
            RunEntry {
                flow: flow.to_string(),
                status: RunStatus::Queued,
                started: false,
                cancel: CancellationToken::new(),
                suspend: CancellationToken::new(),
                done: rx.clone(),
                sender: Some(tx),
            },
        );
        rx
    }

    /// The `done` receiver of an existing run: live, or already finished
    /// (then it holds the stored record).
    async fn done_of(&self, run_id: &str) -> Done {
        if let Some(e) = self.live().get(run_id) {
            return e.done.clone();
        }
        let record = match self.store.run(run_id).await {
            Ok(Some(run)) => run.record,
            _ => None,
        };
        watch::channel(record).1
    }

    /// Starts a registered run's task: its queue place is taken.
    pub(super) fn spawn(self: &Arc<Self>, run: Spawn) {
        let (cancel, suspend, done) = match self.live().get_mut(&run.run_id) {
            Some(e) => match e.sender.take() {
                Some(done) => (e.cancel.clone(), e.suspend.clone(), done),
                None => return,
            },
            None => return,
        };
        let task = self.clone().run(run, cancel, suspend, done);
        self.tasks.spawn(task);
    }

    /// One run: wait for a flow slot and a worker, run, record. Suspended
    /// (a shutdown with a durable store), it stops without a record: the
    /// store keeps it unfinished, to resume.
    async fn run(
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
                self.finish(&run_id, record, &done).await;
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
            self.live().remove(&run_id);
            return;
        };
        let Some(_permits) = permits else {
            let why = "the run was cancelled before it started";
            let error = RunError::new("", ErrorKind::Cancelled, why);
            let record = RunRecord::not_run(run_id.clone(), &flow, RunStatus::Cancelled, error);
            self.finish(&run_id, record, &done).await;
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
            Arc::new(match input_at {
                Some((path, input)) => journal.with_input_at(path, input),
                None => journal,
            })
        });
        let options = RunOptions {
            run_id: Some(run_id.clone()),
            cancel: Some(cancel),
            events: Some(Arc::new(RunEvents::new(&self, hop))),
            max_steps: self.config.max_steps_per_run,
            journal: journal.clone(),
            started_at: Some(started_at),
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
                self.store_record(&run_id, record, journal.as_deref(), &done)
                    .await
            }
            None => {
                tracing::info!(run = %run_id, "run suspended: it resumes at the next start");
                self.live().remove(&run_id);
            }
        }
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
        done: &watch::Sender<Option<Arc<RunRecord>>>,
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
        done: &watch::Sender<Option<Arc<RunRecord>>>,
    ) {
        self.metrics.run_finished(&record);
        let record = Arc::new(record);
        let flushed = async {
            match journal {
                Some(j) => j.flush().await,
                None => Ok(()),
            }
        };
        let (stored, flushed) = tokio::join!(self.store.finish(record.clone()), flushed);
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

    /// What the server knows of a run: live, else from the store.
    pub(crate) async fn lookup(&self, run_id: &str) -> Result<Option<Lookup>, StoreError> {
        if let Some(e) = self.live().get(run_id) {
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
            self.queued(),
            self.in_flight(),
            self.exec.host().instances_alive(),
            &self.exec.breaker_states(),
        );
        self.metrics.encode()
    }
}
