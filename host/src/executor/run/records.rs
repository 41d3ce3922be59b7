//! Step records: where they go, how many a run may start, and the record
//! of a step in progress.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::time::Instant;

use crate::error::ErrorKind;
use crate::executor::record::{
    Attempt, ErrorRecord, FallbackRecord, RunError, StepRecord, StepStatus, StepType,
};

/// The records of a run's steps, as they finish.
pub(crate) struct Records {
    started: Instant,
    list: Mutex<Vec<StepRecord>>,
    /// Steps started so far; never past `max_steps`, so neither is the record.
    count: AtomicUsize,
    max_steps: usize,
}

impl Records {
    pub(super) fn new(started: Instant, capacity: usize, max_steps: usize) -> Self {
        Records {
            started,
            list: Mutex::new(Vec::with_capacity(capacity.min(max_steps))),
            count: AtomicUsize::new(0),
            max_steps,
        }
    }

    /// Fails at `path`, before any item runs, when a for_each of `items`
    /// items of `per_item` steps each would take the run past its cap.
    pub(super) fn room_for_items(
        &self,
        path: &str,
        items: usize,
        per_item: usize,
    ) -> Result<(), RunError> {
        let used = self.count.load(Ordering::SeqCst);
        let need = items.saturating_mul(per_item);
        if used.saturating_add(need) <= self.max_steps {
            return Ok(());
        }
        Err(RunError::new(
            path,
            ErrorKind::TooManySteps,
            format!(
                "for_each over {items} items would start {need} steps ({per_item} per item), \
                 past the cap of {max} steps a run may start ({used} started already)",
                max = self.max_steps
            ),
        ))
    }

    /// Counts one more step at `path`, or fails when the run has started
    /// as many as it may.
    fn take_one(&self, path: &str) -> Result<(), RunError> {
        let max = self.max_steps;
        self.count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .map(drop)
            .map_err(|_| {
                RunError::new(
                    path,
                    ErrorKind::TooManySteps,
                    format!(
                        "the run has started {max} steps, the cap of steps a run may start; \
                         this step would pass it"
                    ),
                )
            })
    }

    /// Milliseconds from the start of the run to `at`.
    pub(super) fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64() * 1e3
    }

    pub(super) fn into_sorted(self) -> Vec<StepRecord> {
        let mut records = self.list.into_inner().unwrap_or_else(|e| e.into_inner());
        records.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        records
    }

    fn push(&self, record: StepRecord) {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

/// The record of a step in progress; dropped unfinished (the run was
/// cancelled, or a fail-fast sibling failed), it records the step as cancelled.
pub(super) struct Guard<'a> {
    records: &'a Records,
    pub(super) record: StepRecord,
    done: bool,
    /// The record is an earlier life's: it keeps its times.
    replayed: bool,
}

impl<'a> Guard<'a> {
    /// The record of a step that starts now, counted against the run's cap
    /// on steps: refused, the step does not start and has no record.
    pub(super) fn start(
        records: &'a Records,
        path: &str,
        kind: StepType,
    ) -> Result<Self, RunError> {
        records.take_one(path)?;
        Ok(Guard::new(records, path, kind))
    }

    /// The record of a step that starts now, not counted: `on_error` only,
    /// which runs (and is recorded) even when the cap stopped the run.
    pub(super) fn new(records: &'a Records, path: &str, kind: StepType) -> Self {
        let start = Instant::now();
        Guard {
            records,
            record: StepRecord {
                path: path.to_string(),
                kind,
                plugin: None,
                version: None,
                status: StepStatus::Cancelled,
                start_ms: records.ms(start),
                duration_ms: 0.0,
                attempts: Vec::new(),
                breaker_open: false,
                fallback: None,
                error: None,
            },
            done: false,
            replayed: false,
        }
    }

    /// The step's result was journaled by an earlier life of the run:
    /// `record` is what it recorded then, times included.
    pub(super) fn replay(&mut self, record: StepRecord) {
        let path = std::mem::take(&mut self.record.path);
        self.record = StepRecord { path, ..record };
        self.replayed = true;
    }

    /// The record as it would be if the step finished now with `status`
    /// (and `error`): what the journal keeps of a finished step.
    pub(super) fn snapshot(&self, status: StepStatus, error: Option<&RunError>) -> StepRecord {
        let mut record = self.record.clone();
        record.status = status;
        if let Some(f) = error {
            record.error = Some(f.record());
        }
        record.duration_ms = self.elapsed_ms();
        record
    }

    pub(super) fn finish(&mut self, status: StepStatus, error: Option<&RunError>) {
        self.record.status = status;
        if let Some(f) = error {
            self.record.error = Some(f.record());
        }
        self.done = true;
        self.push();
    }

    /// From the step's start (an earlier life's, for a resumed step) to now.
    fn elapsed_ms(&self) -> f64 {
        (self.records.ms(Instant::now()) - self.record.start_ms).max(0.0)
    }

    fn push(&mut self) {
        if !self.replayed {
            self.record.duration_ms = self.elapsed_ms();
        }
        // `push` runs once per guard (finish, or drop unfinished): move, don't clone.
        let record = std::mem::replace(&mut self.record, StepRecord::empty());
        self.records.push(record);
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.push();
        }
    }
}

/// Where an attempt's record goes.
pub(super) enum AttemptSlot<'a> {
    /// The attempts of a plugin step, or of `on_error`.
    Attempts(&'a mut Vec<Attempt>),
    /// A fallback's one call: the `fallback` entry of its step's record.
    Fallback {
        entry: &'a mut Option<FallbackRecord>,
        plugin: &'a str,
        version: Option<String>,
    },
}

impl AttemptSlot<'_> {
    fn put(&mut self, attempt: Attempt) {
        match self {
            AttemptSlot::Attempts(list) => list.push(attempt),
            AttemptSlot::Fallback {
                entry,
                plugin,
                version,
            } => {
                **entry = Some(FallbackRecord {
                    plugin: plugin.to_string(),
                    version: version.take(),
                    attempt,
                });
            }
        }
    }
}

/// An attempt in progress: of a plugin step, a fallback or `on_error`.
/// Dropped unfinished (the run was cancelled, a fail-fast sibling failed, or
/// an enclosing timeout passed), it records the attempt as `cancelled` with
/// its time so far. Its fuel is unknown: the guest's store went with the
/// dropped call.
pub(super) struct AttemptGuard<'a> {
    records: &'a Records,
    slot: AttemptSlot<'a>,
    attempt: u32,
    start: Instant,
    done: bool,
}

impl<'a> AttemptGuard<'a> {
    /// Attempt number `attempt`, starting now; its record goes to `slot`.
    pub(super) fn start(records: &'a Records, slot: AttemptSlot<'a>, attempt: u32) -> Self {
        AttemptGuard {
            records,
            slot,
            attempt,
            start: Instant::now(),
            done: false,
        }
    }

    /// The attempt finished: `record` is what it did.
    pub(super) fn finish(mut self, record: Attempt) {
        self.slot.put(record);
        self.done = true;
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let ms = self.start.elapsed().as_secs_f64() * 1e3;
        self.slot.put(Attempt {
            attempt: self.attempt,
            start_ms: self.records.ms(self.start),
            duration_ms: ms,
            fuel: None,
            error: Some(ErrorRecord {
                kind: ErrorKind::Cancelled,
                message: format!("the attempt was stopped after {ms:.0}ms, before it finished"),
            }),
            ..Attempt::default()
        });
    }
}
