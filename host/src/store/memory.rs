//! The `memory` store: runs kept in this process only, lost when it exits.
//! Finished runs are kept bounded in count and bytes (oldest forgotten
//! first), their large outputs and texts trimmed; see [`super::history`].

use std::collections::{BTreeSet, HashMap};

use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::history::{self, History};
use super::{
    Accepted, Cursor, ListQuery, MAX_PAGE, NewRun, Retention, RunPage, StepEntry, Store,
    StoreError, StoredRun, Unfinished, unix_ms,
};
use crate::executor::{RunRecord, RunStatus};
use crate::kv::{KvStore, MemoryKv};

/// What the memory store keeps of finished runs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Bounds {
    /// Finished runs kept at most.
    pub records: usize,
    /// Their estimated bytes at most.
    pub bytes: u64,
    /// An output larger than this is left out of the kept record.
    pub max_output: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            records: 1000,
            bytes: 64 << 20,
            max_output: 64 << 10,
        }
    }
}

/// Runs in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryStore {
    bounds: Bounds,
    inner: Mutex<Inner>,
    kv: Arc<MemoryKv>,
}

#[derive(Debug)]
struct Run {
    new: NewRun,
    status: RunStatus,
    started_at: Option<SystemTime>,
    steps: Vec<StepEntry>,
    record: Option<Arc<RunRecord>>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, Run>,
    /// (accepted at in ms, run id): the listing order.
    order: BTreeSet<(i64, String)>,
    /// (flow, idempotency key) → run id.
    keys: HashMap<(String, String), String>,
    finished: History,
    blobs: HashMap<String, Arc<[u8]>>,
}

impl MemoryStore {
    /// An empty store keeping finished runs within `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        MemoryStore {
            bounds,
            inner: Mutex::default(),
            kv: Arc::new(MemoryKv::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn forget(&mut self, run_id: &str) {
        if let Some(run) = self.runs.remove(run_id) {
            self.order
                .remove(&(unix_ms::from(run.new.accepted_at), run_id.to_string()));
            if let Some(key) = run.new.idempotency_key {
                self.keys.remove(&(run.new.flow, key));
            }
        }
    }
}

fn stored(run_id: &str, run: &Run) -> StoredRun {
    StoredRun {
        run_id: run_id.to_string(),
        flow: run.new.flow.clone(),
        status: run.status,
        accepted_at: run.new.accepted_at,
        record: run.record.clone(),
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory (runs are lost when the server exits)".into()
    }

    fn durable(&self) -> bool {
        false
    }

    fn accept(&self, runs: Vec<NewRun>) -> BoxFuture<'static, Result<Vec<Accepted>, StoreError>> {
        let mut inner = self.lock();
        let mut answers = Vec::with_capacity(runs.len());
        for new in runs {
            if let Some(key) = &new.idempotency_key
                && let Some(existing) = inner.keys.get(&(new.flow.clone(), key.clone()))
            {
                answers.push(Accepted::Existing {
                    run_id: existing.clone(),
                });
                continue;
            }
            if let Some(key) = &new.idempotency_key {
                inner
                    .keys
                    .insert((new.flow.clone(), key.clone()), new.run_id.clone());
            }
            inner
                .order
                .insert((unix_ms::from(new.accepted_at), new.run_id.clone()));
            inner.runs.insert(
                new.run_id.clone(),
                Run {
                    new,
                    status: RunStatus::Queued,
                    started_at: None,
                    steps: Vec::new(),
                    record: None,
                },
            );
            answers.push(Accepted::New);
        }
        Box::pin(std::future::ready(Ok(answers)))
    }

    async fn started(&self, run_id: &str, at: SystemTime) -> Result<(), StoreError> {
        // A late start (it is not waited for) never overwrites a finish.
        if let Some(run) = self.lock().runs.get_mut(run_id)
            && run.record.is_none()
        {
            run.status = RunStatus::Running;
            run.started_at.get_or_insert(at);
        }
        Ok(())
    }

    fn journal(
        &self,
        run_id: &str,
        entry: StepEntry,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        if let Some(run) = self.lock().runs.get_mut(run_id) {
            match run.steps.iter_mut().find(|e| e.path == entry.path) {
                Some(old) => *old = entry,
                None => run.steps.push(entry),
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    async fn finish(&self, record: Arc<RunRecord>) -> Result<(), StoreError> {
        // Trimmed and sized outside the lock.
        let kept = history::kept(&record, self.bounds.max_output);
        let size = history::size(&kept);
        let bounds = history::Bounds {
            records: self.bounds.records,
            bytes: self.bounds.bytes,
        };
        let mut inner = self.lock();
        let run_id = record.run_id.clone();
        if let Some(run) = inner.runs.get_mut(&run_id) {
            run.status = record.status;
            run.record = Some(kept);
            // The journal stays, for a rerun from one of the run's steps.
        } else {
            return Ok(());
        }
        for old in inner.finished.push(run_id, size, &bounds) {
            inner.forget(&old);
        }
        Ok(())
    }

    async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .order
            .iter()
            .filter_map(|(_, id)| inner.runs.get(id))
            .filter(|run| run.record.is_none())
            .map(|run| Unfinished {
                run: run.new.clone(),
                started_at: run.started_at,
                steps: resolved(run),
                cancel_requested: false,
            })
            .collect())
    }

    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        Ok(self.lock().runs.get(run_id).map(|r| stored(run_id, r)))
    }

    async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        Ok(self
            .lock()
            .runs
            .get(run_id)
            .map(|r| (r.new.clone(), resolved(r))))
    }

    async fn list(&self, query: ListQuery) -> Result<RunPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let inner = self.lock();
        let before = query.cursor.map(|c| (c.accepted_ms, c.run_id));
        let mut runs = Vec::new();
        let mut next = None;
        let candidates = inner
            .order
            .iter()
            .rev()
            .filter(|k| before.as_ref().is_none_or(|b| *k < b));
        for (ms, id) in candidates {
            let Some(run) = inner.runs.get(id) else {
                continue;
            };
            if query.flow.as_ref().is_some_and(|f| *f != run.new.flow)
                || query.status.is_some_and(|s| s != run.status)
            {
                continue;
            }
            if runs.len() == limit {
                break;
            }
            runs.push(StoredRun {
                record: None,
                ..stored(id, run)
            });
            next = Some(Cursor {
                accepted_ms: *ms,
                run_id: id.clone(),
            });
        }
        if runs.len() < limit {
            next = None;
        }
        Ok(RunPage { runs, next })
    }

    /// The memory store is bounded by its own count and bytes ([`Bounds`]);
    /// it removes nothing by age.
    /// Finished runs are bounded as they finish; this only sweeps expired
    /// key-value entries.
    async fn prune(&self, _retention: Retention) -> Result<usize, StoreError> {
        self.kv.sweep();
        Ok(0)
    }

    async fn put_blob(&self, hash: &str, bytes: Arc<[u8]>) -> Result<(), StoreError> {
        self.lock().blobs.entry(hash.to_string()).or_insert(bytes);
        Ok(())
    }

    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().blobs.get(hash).map(|b| b.to_vec()))
    }

    fn kv(&self) -> Arc<dyn KvStore> {
        self.kv.clone()
    }

    fn usage(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.finished.len(), inner.finished.bytes() as u64)
    }
}

/// A run's journal, with the inputs its entries name filled in.
fn resolved(run: &Run) -> Vec<StepEntry> {
    let mut steps = run.steps.clone();
    super::resolve_inputs(&run.new.input, &mut steps);
    steps
}
