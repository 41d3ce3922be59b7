//! Step records: where they go, and the record of a step in progress.

use std::sync::Mutex;
use std::time::Instant;

use crate::executor::record::{RunError, StepRecord, StepStatus, StepType};

/// The records of a run's steps, as they finish.
pub(crate) struct Records {
    started: Instant,
    list: Mutex<Vec<StepRecord>>,
}

impl Records {
    pub(super) fn new(started: Instant, capacity: usize) -> Self {
        Records {
            started,
            list: Mutex::new(Vec::with_capacity(capacity)),
        }
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
    start: Instant,
    pub(super) record: StepRecord,
    done: bool,
}

impl<'a> Guard<'a> {
    pub(super) fn new(records: &'a Records, path: &str, kind: StepType) -> Self {
        let start = Instant::now();
        Guard {
            records,
            start,
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
        }
    }

    pub(super) fn finish(&mut self, status: StepStatus, error: Option<&RunError>) {
        self.record.status = status;
        if let Some(f) = error {
            self.record.error = Some(f.record());
        }
        self.done = true;
        self.push();
    }

    fn push(&mut self) {
        self.record.duration_ms = self.start.elapsed().as_secs_f64() * 1e3;
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
