//! Admission: runs asking to start take queue places, are committed to the
//! store (all of an event's runs in one transaction), and only then are their
//! clients answered; a run whose idempotency key its flow already used is
//! answered with that run.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::state::{Admission, Done, Refusal, RunEntry, Spawn, State};
use crate::executor::{InputError, RunInput, RunRecord, RunStatus, new_run_id};
use crate::store::{Accepted, NewRun, StoreError};

impl State {
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
        // In a fleet, runs wait in the shared queue for a claim instead.
        let early =
            self.fleet.is_none() && runs.iter().all(|r| r.key.is_none() && r.rerun.is_none());
        let accepted_at = std::time::SystemTime::now();
        let snapshot = self.plugins.snapshot();
        let mut pending = Vec::with_capacity(n);
        let mut new_runs = Vec::with_capacity(n);
        for run in runs {
            let run_id = new_run_id();
            // A refused input is kept as it came too: a fleet server that
            // claims the run checks it again, and fails it alike.
            let input_text = run.input.get().to_string();
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
                hop,
            });
            // Live before it is committed: a concurrent submission with the
            // same key finds it as soon as the store answers `Existing`.
            let done = self.register(&run_id, &run.flow.name);
            let input = match run.refused {
                Some(e) => Err(e),
                None => Ok(run.input),
            };
            pending.push((run.flow, input, run_id, done, run.rerun));
        }
        // In a fleet, the runs this server has free workers for are claimed
        // as they are accepted (a limited flow's wait for a claim, which
        // counts the fleet's runs).
        let claims = match &self.fleet {
            Some(_) => {
                let busy = (self.in_flight() + self.queued()).saturating_sub(n);
                let mut free = self.config.workers.max(1).saturating_sub(busy);
                pending
                    .iter()
                    .map(|(flow, input, _, _, rerun)| {
                        let claim = free > 0
                            && flow.concurrency.is_none()
                            && rerun.is_none()
                            && input.is_ok();
                        free -= usize::from(claim);
                        claim
                    })
                    .collect()
            }
            None => vec![false; n],
        };
        let accepting = match &self.fleet {
            Some(fleet) => fleet.accept_claiming(new_runs, claims),
            None => {
                let accepting = self.store.accept(new_runs);
                Box::pin(
                    async move { Ok(accepting.await?.into_iter().map(|a| (a, false)).collect()) },
                )
            }
        };
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
                return Err(match e {
                    StoreError::Full { .. } => Refusal::QueueFull,
                    e => Refusal::Store(e),
                });
            }
        };
        let mut out = Vec::with_capacity(n);
        for ((flow, input, run_id, done, rerun), (answer, claimed)) in
            pending.into_iter().zip(answers)
        {
            match answer {
                Accepted::New if self.fleet.is_some() && !claimed => {
                    self.queue_shared(flow, input, &run_id, rerun, hop).await;
                    out.push((run_id, done));
                }
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
        self.claim_wake.notify_one();
        Ok(out)
    }

    /// A run accepted into a fleet's shared queue: this server waits for
    /// whichever claims it. A run refused for its input fails at once; a
    /// rerun is claimed here, to journal the steps it reuses first.
    async fn queue_shared(
        self: &Arc<Self>,
        flow: Arc<crate::flow::Flow>,
        input: Result<RunInput, InputError>,
        run_id: &str,
        rerun: Option<super::state::Rerun>,
        hop: u32,
    ) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                let record = RunRecord::not_run(
                    run_id.to_string(),
                    &flow,
                    RunStatus::Failed,
                    e.to_run_error(),
                );
                match fleet.finish_unclaimed(Arc::new(record.clone())).await {
                    Ok(true) => self.resolve_waiter(run_id, Arc::new(record)),
                    // Claimed meanwhile: its worker checks the input again.
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(run = %run_id, error = %e, "the store could not fail a refused run; a server that claims it checks its input")
                    }
                }
                return;
            }
        };
        let Some(rerun) = rerun else { return };
        match fleet.claim_run(run_id, &self.flow_limits_now()).await {
            Ok(Some(_)) => {
                self.queued.fetch_add(1, Ordering::SeqCst);
                let journaled = self.reuse(run_id, rerun.journaled).await;
                self.spawn(Spawn {
                    flow,
                    input: Ok(input),
                    run_id: run_id.to_string(),
                    hop,
                    started_at: None,
                    journaled,
                    plugins: None,
                    input_at: rerun.input_at,
                });
            }
            Ok(None) => {
                tracing::warn!(run = %run_id, "another server claimed the rerun first: it runs from the start")
            }
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "claiming the rerun failed: a server claims it later and runs it from the start")
            }
        }
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

    /// Makes `run_id` a live, queued run; returns its `done` receiver. A
    /// run live already (a fleet's waiter) stays as it is.
    pub(super) fn register(&self, run_id: &str, flow: &str) -> Done {
        if let Some(e) = self.live().get(run_id) {
            return e.done.clone();
        }
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
                journal: None,
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
            // Running elsewhere in the fleet: wait for it here.
            Ok(Some(run)) if run.record.is_none() && self.fleet.is_some() => {
                return self.register(run_id, &run.flow);
            }
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
}
