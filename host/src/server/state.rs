//! The server's state: admission into the bounded queue, the worker pool,
//! per-flow concurrency, the store of recent runs, and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ServerConfig;
use super::events::RunEvents;
use crate::store::history::{self, Bounds, History};
use crate::error::ErrorKind;
use crate::executor::{
    Executor, InputError, RunError, RunInput, RunOptions, RunRecord, RunStatus, new_run_id,
};
use crate::flow::Flow;
use crate::host::Host;
use crate::live::{LiveFlows, LivePlugins, ReloadOutcome};
use crate::metrics::Metrics;
use crate::plugin::Plugin;

/// Why a run was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The queue is full: try again later.
    QueueFull,
    /// The server is shutting down.
    ShuttingDown,
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
}

/// Resolves with the record when a run finishes.
pub(crate) type Done = watch::Receiver<Option<Arc<RunRecord>>>;

pub(crate) struct RunEntry {
    pub(crate) flow: String,
    pub(crate) status: RunStatus,
    /// Whether it got a worker: a cancelled run that never did was cancelled
    /// in the queue.
    pub(crate) started: bool,
    pub(crate) cancel: CancellationToken,
    /// When finished, the record as kept (trimmed); the full one went to
    /// whoever waited for the run.
    pub(crate) record: Option<Arc<RunRecord>>,
}

pub(crate) struct State {
    pub(crate) config: ServerConfig,
    pub(crate) exec: Executor,
    pub(crate) plugins: LivePlugins,
    pub(crate) flows: LiveFlows,
    pub(crate) probe: Plugin,
    pub(crate) metrics: Metrics,
    pub(crate) started: Instant,
    /// Milliseconds since `started` at the last heartbeat.
    pub(crate) heartbeat: std::sync::atomic::AtomicU64,
    runs: Mutex<Runs>,
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    accepting: AtomicBool,
    workers: Arc<Semaphore>,
    flow_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    tasks: TaskTracker,
}

#[derive(Default)]
struct Runs {
    by_id: HashMap<String, RunEntry>,
    finished: History,
}

impl State {
    pub(crate) fn new(
        host: Host,
        plugins: LivePlugins,
        flows: LiveFlows,
        probe: Plugin,
        config: ServerConfig,
    ) -> Arc<Self> {
        Arc::new(State {
            exec: Executor::new(host),
            plugins,
            flows,
            probe,
            metrics: Metrics::new(),
            started: Instant::now(),
            heartbeat: Default::default(),
            runs: Mutex::default(),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            flow_limits: Mutex::default(),
            tasks: TaskTracker::new(),
            config,
        })
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
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
    /// event is never half-accepted. Each is a flow and its input, checked
    /// against the flow; a run refused for its input fails at once. An event
    /// that starts more runs than the queue holds is accepted whole when the
    /// queue is empty, so that a retry can always get past a `429`.
    pub(crate) fn admit(
        self: &Arc<Self>,
        runs: Vec<(Arc<Flow>, Result<RunInput, InputError>)>,
        hop: u32,
    ) -> Result<Vec<(String, Done)>, Refusal> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(Refusal::ShuttingDown);
        }
        let n = runs.len();
        let capacity = self.config.queue_capacity;
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q + n <= capacity || q == 0).then_some(q + n)
            })
            .map_err(|_| Refusal::QueueFull)?;
        let mut accepted = Vec::with_capacity(n);
        for (flow, input) in runs {
            let run_id = new_run_id();
            let cancel = CancellationToken::new();
            let (tx, rx) = watch::channel(None);
            self.runs().by_id.insert(
                run_id.clone(),
                RunEntry {
                    flow: flow.name.clone(),
                    status: RunStatus::Queued,
                    started: false,
                    cancel: cancel.clone(),
                    record: None,
                },
            );
            let task = self
                .clone()
                .run(flow, input, run_id.clone(), cancel, tx, hop);
            self.tasks.spawn(task);
            accepted.push((run_id, rx));
        }
        Ok(accepted)
    }

    /// One run: wait for a flow slot and a worker, run, record.
    async fn run(
        self: Arc<Self>,
        flow: Arc<Flow>,
        input: Result<RunInput, InputError>,
        run_id: String,
        cancel: CancellationToken,
        done: watch::Sender<Option<Arc<RunRecord>>>,
        hop: u32,
    ) {
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                let record =
                    RunRecord::not_run(run_id.clone(), &flow, RunStatus::Failed, e.to_run_error());
                self.metrics.run_finished(&record);
                self.finish(&run_id, record, &done);
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
            p = permits => Some(p),
            _ = cancel.cancelled() => None,
        };
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(_permits) = permits else {
            let why = "the run was cancelled before it started";
            let error = RunError::new("", ErrorKind::Cancelled, why);
            let record = RunRecord::not_run(run_id.clone(), &flow, RunStatus::Cancelled, error);
            self.metrics.run_finished(&record);
            self.finish(&run_id, record, &done);
            return;
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.started(&run_id);
        self.metrics.run_started(&flow.name);
        let options = RunOptions {
            run_id: Some(run_id.clone()),
            cancel: Some(cancel),
            events: Some(Arc::new(RunEvents::new(&self, hop))),
            max_steps: self.config.max_steps_per_run,
            ..RunOptions::default()
        };
        let plugins = self.plugins.snapshot();
        let record = self.exec.run_input(&flow, &plugins, input, options).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.metrics.run_finished(&record);
        self.finish(&run_id, record, &done);
    }

    fn started(&self, run_id: &str) {
        if let Some(e) = self.runs().by_id.get_mut(run_id) {
            e.status = RunStatus::Running;
            e.started = true;
        }
    }

    fn finish(
        &self,
        run_id: &str,
        record: RunRecord,
        done: &watch::Sender<Option<Arc<RunRecord>>>,
    ) {
        let status = record.status;
        let record = Arc::new(record);
        // Trimmed and sized outside the lock; only the waiting client's
        // receiver holds the full record, until it has answered.
        let kept = history::kept(&record, self.config.run_history_max_output);
        let size = history::size(&kept);
        let bounds = Bounds {
            records: self.config.run_history,
            bytes: self.config.run_history_bytes,
        };
        {
            let mut runs = self.runs();
            if let Some(e) = runs.by_id.get_mut(run_id) {
                e.status = status;
                e.record = Some(kept);
            }
            for old in runs.finished.push(run_id.to_string(), size, &bounds) {
                runs.by_id.remove(&old);
            }
        }
        // Kept first: a client answered with the record finds it at `GET /runs/{id}`.
        done.send_replace(Some(record));
    }

    /// A run's status and, when finished, its record.
    pub(crate) fn lookup(
        &self,
        run_id: &str,
    ) -> Option<(String, RunStatus, Option<Arc<RunRecord>>)> {
        let runs = self.runs();
        let e = runs.by_id.get(run_id)?;
        Some((e.flow.clone(), e.status, e.record.clone()))
    }

    /// Asks a run to stop; its record says `cancelled`. `None`: unknown run.
    pub(crate) fn cancel(&self, run_id: &str) -> Option<RunStatus> {
        let runs = self.runs();
        let e = runs.by_id.get(run_id)?;
        if matches!(e.status, RunStatus::Queued | RunStatus::Running) {
            e.cancel.cancel();
        }
        Some(e.status)
    }

    /// Stops accepting, drains, cancels what is left and reports.
    pub(crate) async fn shutdown(&self) -> ShutdownReport {
        self.accepting.store(false, Ordering::SeqCst);
        self.tasks.close();
        let pending: Vec<String> = {
            let runs = self.runs();
            let open = |e: &&RunEntry| matches!(e.status, RunStatus::Queued | RunStatus::Running);
            runs.by_id
                .iter()
                .filter(|(_, e)| open(e))
                .map(|(id, _)| id.clone())
                .collect()
        };
        // Queued runs never start once we stop: cancel them first.
        let queued: Vec<String> = pending
            .iter()
            .filter(|id| {
                self.lookup(id)
                    .is_some_and(|(_, s, _)| s == RunStatus::Queued)
            })
            .cloned()
            .collect();
        for id in &queued {
            self.cancel(id);
        }
        if tokio::time::timeout(self.config.drain_timeout, self.tasks.wait())
            .await
            .is_err()
        {
            for id in &pending {
                if self
                    .lookup(id)
                    .is_some_and(|(_, s, _)| s == RunStatus::Running)
                {
                    tracing::warn!(run = %id, "drain deadline passed: cancelling the run");
                    self.cancel(id);
                }
            }
            self.tasks.wait().await;
        }
        // Sort every run that was open by how it ended.
        let mut report = ShutdownReport::default();
        for id in pending {
            let Some((status, started)) = self.runs().by_id.get(&id).map(|e| (e.status, e.started))
            else {
                continue;
            };
            match (status, started) {
                (RunStatus::Cancelled, false) => {
                    tracing::warn!(run = %id, "queued run cancelled by shutdown: it never started");
                    report.cancelled_queued.push(id);
                }
                (RunStatus::Cancelled, true) => report.cancelled_running.push(id),
                _ => report.drained += 1,
            }
        }
        tracing::info!(
            drained = report.drained,
            cancelled_running = report.cancelled_running.len(),
            cancelled_queued = report.cancelled_queued.len(),
            "shutdown complete"
        );
        report
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
        let (kept, bytes) = {
            let runs = self.runs();
            (runs.finished.len(), runs.finished.bytes())
        };
        self.metrics.set_history(kept, bytes);
        self.metrics.set_gauges(
            self.queued(),
            self.in_flight(),
            self.exec.host().instances_alive(),
            &self.exec.breaker_states(),
        );
        self.metrics.encode()
    }
}
