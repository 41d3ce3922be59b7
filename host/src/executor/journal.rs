//! A run's journal: where its plugin steps' results go as they complete, and
//! what an earlier life of the run left there, replayed instead of calling
//! the steps again.
//!
//! Only plugin steps (the leaves) are journaled, by path (`lines[3].price`);
//! composite steps, conditions and expressions are evaluated again on a
//! resume, which is deterministic given the recorded outputs. A step whose
//! result was journaled is not called again; a step that was in flight (no
//! entry) runs again; a step that was waiting out a retry backoff resumes
//! with its earlier attempts, at its scheduled time. The journal knows the
//! store only through the [`Store`] trait.
//!
//! Writes are pipelined: a run queues each entry in the store and goes on,
//! so its steps do not wait for commits, and the entries of many runs share
//! the store's transactions. The store commits one caller's entries in the
//! order queued, so what a crash leaves is a prefix of what the run did. A
//! step whose events wait in its outbox waits for its entry's commit (the
//! events start runs only then). Whoever stores the run's final record
//! waits for all of its entries ([`RunJournal::flush`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use serde_json::value::RawValue;

use super::data::{Data, Doc};
use super::record::{RunError, StepRecord, StepStatus};
use crate::error::ErrorKind;
use crate::runtime::events::Event;
use crate::store::{Emitted, MAX_JOURNALED_INPUT, RUN_INPUT, StepEntry, Store, StoreError};

/// The journal of one run: built on a [`Store`], with the entries an earlier
/// life of the run wrote (from [`Store::unfinished`], or chosen for a rerun).
/// Given to a run in [`RunOptions::journal`](crate::executor::RunOptions).
pub struct RunJournal {
    store: Arc<dyn Store>,
    run_id: String,
    /// The earlier entries by path; a later entry replaces an earlier one.
    earlier: HashMap<String, StepEntry>,
    /// A step that gets this input instead of its own (a rerun from it).
    input_at: Option<(String, Doc)>,
    /// Entries queued and not yet known to be committed: each one's path
    /// and its commit.
    pending: Mutex<Vec<Pending>>,
    /// Every entry is committed before the run goes on (a shared store).
    synchronous: bool,
    /// Plugin steps called and not yet journaled: when each started (in
    /// milliseconds since the run started, and on this process's clock).
    in_flight: Mutex<HashMap<String, (f64, std::time::Instant)>>,
    /// What a step's input most often repeats, so that its entry names it
    /// instead of copying it: the run's input and the last output.
    sources: Mutex<Sources>,
}

/// The documents an entry may name as its input.
#[derive(Default)]
struct Sources {
    run_input: Option<Doc>,
    /// The output last journaled or replayed, and its step's path.
    last: Option<(String, Doc)>,
}

/// A step's input as its entry keeps it.
pub(crate) enum KeptInput {
    /// A copy of the text.
    Text(Box<RawValue>),
    /// The run's input or an earlier step's output, named.
    Named(String),
}

/// An entry's path and its commit.
type Pending = (String, BoxFuture<'static, Result<(), StoreError>>);

/// Entries a run may have in flight; past it, the run waits for them.
const MAX_PENDING: usize = 64;

impl std::fmt::Debug for RunJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunJournal")
            .field("store", &self.store.describe())
            .field("run_id", &self.run_id)
            .field("earlier", &self.earlier.len())
            .field("input_at", &self.input_at.as_ref().map(|(p, _)| p))
            .finish()
    }
}

/// A journaled result, replayed: the step's record and its outcome.
pub(crate) struct Replay {
    pub(crate) record: StepRecord,
    pub(crate) result: Result<Doc, RunError>,
    /// The events the step emitted, to hand on again (their key makes it
    /// start nothing twice).
    pub(crate) emitted: Vec<Event>,
}

/// A step resuming its retries: its earlier attempts and when the next starts.
pub(crate) struct Resume {
    pub(crate) record: StepRecord,
    /// The number of the next attempt.
    pub(crate) next: u32,
    /// The last attempt's failure.
    pub(crate) last: Option<RunError>,
    /// When the next attempt is due.
    pub(crate) retry_at: SystemTime,
}

impl RunJournal {
    /// The journal of run `run_id` in `store`, which an earlier life of the
    /// run left with `entries` (empty for a new run).
    pub fn new(store: Arc<dyn Store>, run_id: impl Into<String>, entries: Vec<StepEntry>) -> Self {
        let earlier = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        RunJournal {
            store,
            run_id: run_id.into(),
            earlier,
            input_at: None,
            pending: Mutex::default(),
            synchronous: false,
            in_flight: Mutex::default(),
            sources: Mutex::default(),
        }
    }

    /// The step at `path` gets `input` instead of evaluating its own `if` and
    /// `input` (and runs, whatever an earlier entry at `path` says): a rerun
    /// from that step with a new input.
    pub fn with_input_at(mut self, path: impl Into<String>, input: Box<RawValue>) -> Self {
        self.input_at = Some((path.into(), Data::from_raw(input)));
        self
    }

    /// Each step waits for its entry's commit before the run goes on. For a
    /// store several servers share, where a write is refused once another
    /// server took the run over: the run then stops at the step it was in,
    /// instead of running further steps whose results nobody would keep.
    pub fn synchronous(mut self) -> Self {
        self.synchronous = true;
        self
    }

    /// Notes that the plugin step at `path`, started `start_ms` into the
    /// run, is being called (until its result is journaled): what a live
    /// view shows as running.
    pub(crate) fn calling(&self, path: &str, start_ms: f64) {
        self.in_flight()
            .insert(path.to_string(), (start_ms, std::time::Instant::now()));
    }

    /// The plugin steps being called now: each one's path, when it started
    /// (milliseconds since the run started) and how long it has run.
    pub fn calls_in_flight(&self) -> Vec<(String, f64, Duration)> {
        let mut calls: Vec<_> = self
            .in_flight()
            .iter()
            .map(|(path, (start_ms, at))| (path.clone(), *start_ms, at.elapsed()))
            .collect();
        calls.sort_by(|a, b| a.1.total_cmp(&b.1));
        calls
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, (f64, std::time::Instant)>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the run's input, which a step's entry names rather than copies.
    pub(crate) fn run_input(&self, input: &Doc) {
        self.sources().run_input = Some(input.clone());
    }

    /// What the entry of a step called with `input` keeps of it: a name
    /// when it is the run's input or the last output (a chain of steps
    /// writes each document once), else a copy, unless it is over
    /// [`MAX_JOURNALED_INPUT`] bytes.
    pub(crate) fn keep_input(&self, input: &Doc) -> Option<KeptInput> {
        let same = |doc: &Doc| Arc::ptr_eq(doc, input) || doc.raw().get() == input.raw().get();
        let sources = self.sources();
        if sources.run_input.as_ref().is_some_and(same) {
            return Some(KeptInput::Named(RUN_INPUT.to_string()));
        }
        if let Some((path, _)) = sources.last.as_ref().filter(|(_, doc)| same(doc)) {
            return Some(KeptInput::Named(path.clone()));
        }
        let text = input.raw();
        (text.get().len() <= MAX_JOURNALED_INPUT).then(|| KeptInput::Text(text.to_owned()))
    }

    /// The run the entries are written for.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The input given to the step at `path` by [`RunJournal::with_input_at`].
    pub(crate) fn input_at(&self, path: &str) -> Option<Doc> {
        self.input_at
            .as_ref()
            .filter(|(p, _)| p == path)
            .map(|(_, input)| input.clone())
    }

    /// The earlier entry at `path`, unless the step is to run again anyway.
    fn entry(&self, path: &str) -> Option<&StepEntry> {
        if self.input_at.as_ref().is_some_and(|(p, _)| p == path) {
            return None;
        }
        self.earlier.get(path)
    }

    /// The completed result journaled at `path`, to use instead of calling
    /// the step. A cancelled step is never journaled; if one is found, the
    /// step runs again.
    pub(crate) fn replay(&self, path: &str) -> Option<Replay> {
        let entry = self.entry(path).filter(|e| e.retry_at.is_none())?;
        let failed = matches!(
            entry.record.status,
            StepStatus::Failed | StepStatus::Continued
        );
        let result = match (&entry.record.error, &entry.output) {
            (Some(e), _) if e.kind == ErrorKind::Cancelled => return None,
            (Some(e), _) if failed => Err(RunError::new(path, e.kind, e.message.clone())),
            (_, Some(out)) => Ok(Data::from_raw(out.clone())),
            (_, None) => Ok(Data::from_value(serde_json::Value::Null)),
        };
        // Only an output the store holds can be named.
        if let (Ok(doc), Some(_)) = (&result, &entry.output) {
            self.sources().last = Some((path.to_string(), doc.clone()));
        }
        let emitted = entry
            .emitted
            .iter()
            .map(|e| Event {
                topic: e.topic.clone(),
                payload: e.payload.clone(),
                run_id: self.run_id.clone(),
                ..Event::default()
            })
            .collect();
        Some(Replay {
            record: entry.record.clone(),
            result,
            emitted,
        })
    }

    /// The retry the step at `path` was waiting for, if it was.
    pub(crate) fn resume(&self, path: &str) -> Option<Resume> {
        let entry = self.entry(path)?;
        let retry_at = entry.retry_at?;
        let attempts = &entry.record.attempts;
        let last = attempts.last();
        Some(Resume {
            record: entry.record.clone(),
            next: last.map_or(1, |a| a.attempt.saturating_add(1)),
            last: last
                .and_then(|a| a.error.as_ref())
                .map(|e| RunError::new(path, e.kind, e.message.clone())),
            retry_at,
        })
    }

    /// Journals the result of the step at `path`, whose record (with its
    /// final status) is `record`; when it returns `Ok`, the result survives
    /// a crash. A cancellation is not a result: nothing is written.
    pub(crate) async fn completed(
        &self,
        record: StepRecord,
        input: Option<KeptInput>,
        result: &Result<Doc, RunError>,
        emitted: &[Event],
    ) -> Result<(), RunError> {
        self.in_flight().remove(&record.path);
        let output = match result {
            Ok(doc) => {
                self.sources().last = Some((record.path.clone(), doc.clone()));
                Some(doc.raw().to_owned())
            }
            Err(f) if f.kind == ErrorKind::Cancelled => return Ok(()),
            Err(_) => None,
        };
        let emitted = emitted.iter().map(Emitted::from).collect();
        self.write(Write {
            record,
            input,
            output,
            retry_at: None,
            emitted,
        })
        .await
    }

    /// Journals that the step at `record.path` waits `delay` before its next
    /// attempt, with its attempts so far, so that a resumed run retries it
    /// at that time.
    pub(crate) async fn retry_in(
        &self,
        record: StepRecord,
        delay: Duration,
    ) -> Result<(), RunError> {
        let at = SystemTime::now()
            .checked_add(delay)
            .unwrap_or_else(SystemTime::now);
        self.write(Write {
            record,
            input: None,
            output: None,
            retry_at: Some(at),
            emitted: Vec::new(),
        })
        .await
    }

    async fn write(&self, w: Write) -> Result<(), RunError> {
        let waits = !w.emitted.is_empty();
        let path = w.record.path.clone();
        let (input, input_from) = match w.input {
            Some(KeptInput::Text(text)) => (Some(text), None),
            Some(KeptInput::Named(from)) => (None, Some(from)),
            None => (None, None),
        };
        let entry = StepEntry {
            path: path.clone(),
            record: w.record,
            output: w.output,
            input,
            input_from,
            retry_at: w.retry_at,
            emitted: w.emitted,
        };
        let commit = self.store.journal(&self.run_id, entry);
        // Only a step with events in its outbox waits for the commit, or
        // every step of a synchronous journal.
        if waits || self.synchronous {
            return commit.await.map_err(|e| failed(&path, e));
        }
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push((path, commit));
            pending.len() >= MAX_PENDING
        };
        if full {
            self.flush().await?;
        }
        Ok(())
    }

    /// Waits until every entry queued so far is committed; the first
    /// failure, if one did, names the step it could not record. A run does
    /// not wait for its entries: whoever stores its final record queues
    /// that first (the store commits in order, the record after the
    /// entries) and then flushes, so both commits are waited for at once.
    pub async fn flush(&self) -> Result<(), RunError> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let (paths, commits): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let results = futures::future::join_all(commits).await;
        for (path, result) in paths.iter().zip(results) {
            result.map_err(|e| failed(path, e))?;
        }
        Ok(())
    }
}

/// What one journal entry holds.
struct Write {
    record: StepRecord,
    input: Option<KeptInput>,
    output: Option<Box<RawValue>>,
    retry_at: Option<SystemTime>,
    emitted: Vec<Emitted>,
}

/// The failure of a step whose entry the store could not commit.
fn failed(path: &str, e: StoreError) -> RunError {
    RunError::new(
        path,
        ErrorKind::Host,
        format!("the run's journal could not record step {path}: {e}"),
    )
}
