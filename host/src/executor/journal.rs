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
//! Writes are pipelined: a run hands each entry to its own writer task and
//! goes on, so its steps do not wait for commits, and the entries of many
//! runs share the store's transactions. The task writes one run's entries
//! in order, so what a crash leaves is always a prefix of what the run did;
//! after a failed write it writes nothing more. A step whose events wait in
//! its outbox waits for its entry's commit (the events start runs only
//! then), and the run waits for all of its entries ([`RunJournal::flush`])
//! before it ends.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use serde_json::value::RawValue;

use super::data::{Data, Doc};
use super::record::{RunError, StepRecord, StepStatus};
use crate::error::ErrorKind;
use crate::runtime::events::Event;
use crate::store::{Emitted, StepEntry, Store};

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
    /// The run's writer task, started at the first write.
    writes: OnceLock<mpsc::UnboundedSender<Job>>,
}

/// What the writer task does.
enum Job {
    /// Write an entry; answer when committed, if asked.
    Write(
        Box<StepEntry>,
        Option<oneshot::Sender<Result<(), RunError>>>,
    ),
    /// Answer once every earlier entry is committed, with the first failure.
    Flush(oneshot::Sender<Result<(), RunError>>),
}

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
            writes: OnceLock::new(),
        }
    }

    /// The step at `path` gets `input` instead of evaluating its own `if` and
    /// `input` (and runs, whatever an earlier entry at `path` says): a rerun
    /// from that step with a new input.
    pub fn with_input_at(mut self, path: impl Into<String>, input: Box<RawValue>) -> Self {
        self.input_at = Some((path.into(), Data::from_raw(input)));
        self
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
        result: &Result<Doc, RunError>,
        emitted: &[Event],
    ) -> Result<(), RunError> {
        let output = match result {
            Ok(doc) => Some(doc.raw().to_owned()),
            Err(f) if f.kind == ErrorKind::Cancelled => return Ok(()),
            Err(_) => None,
        };
        let emitted = emitted.iter().map(Emitted::from).collect();
        self.write(record, output, None, emitted).await
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
        self.write(record, None, Some(at), Vec::new()).await
    }

    async fn write(
        &self,
        record: StepRecord,
        output: Option<Box<RawValue>>,
        retry_at: Option<SystemTime>,
        emitted: Vec<Emitted>,
    ) -> Result<(), RunError> {
        let entry = StepEntry {
            path: record.path.clone(),
            record,
            output,
            retry_at,
            emitted,
        };
        // Only a step with events in its outbox waits for the commit.
        let (reply, answer) = if entry.emitted.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        };
        self.send(Job::Write(Box::new(entry), reply));
        match answer {
            Some(answer) => answer.await.unwrap_or_else(|_| Err(closed())),
            None => Ok(()),
        }
    }

    /// Waits until every entry written so far is committed; the first
    /// failure, if one did, names the step it could not record.
    pub(crate) async fn flush(&self) -> Result<(), RunError> {
        if self.writes.get().is_none() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Job::Flush(tx));
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    fn send(&self, job: Job) {
        let queue = self.writes.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_in_order(self.store.clone(), self.run_id.clone(), rx));
            tx
        });
        // The task ends only when every sender is gone.
        let _ = queue.send(job);
    }
}

/// A run's writer task: its entries, one after the other, in order.
async fn write_in_order(
    store: Arc<dyn Store>,
    run_id: String,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let mut failed: Option<RunError> = None;
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Write(entry, reply) => {
                let result = match &failed {
                    // A later entry without an earlier one would not be a
                    // prefix of the run: nothing more is written.
                    Some(f) => Err(f.clone()),
                    None => {
                        let path = entry.path.clone();
                        store.journal(&run_id, *entry).await.map_err(|e| {
                            RunError::new(
                                &path,
                                ErrorKind::Host,
                                format!("the run's journal could not record step {path}: {e}"),
                            )
                        })
                    }
                };
                if let Err(e) = &result {
                    failed.get_or_insert_with(|| e.clone());
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Job::Flush(reply) => {
                let _ = reply.send(failed.clone().map_or(Ok(()), Err));
            }
        }
    }
}

fn closed() -> RunError {
    RunError::new(
        "",
        ErrorKind::Host,
        "the run's journal stopped before it recorded every step",
    )
}
