//! Step records in progress.

use std::time::Instant;

use super::{Failure, RunCtx};
use crate::executor::record::{ErrorRecord, StepRecord, StepStatus};

/// The record of a step in progress; dropped unfinished (the run was
/// cancelled, or a fail-fast sibling failed), it records the step as cancelled.
pub(super) struct Guard<'a> {
    ctx: &'a RunCtx<'a>,
    start: Instant,
    pub(super) record: StepRecord,
    done: bool,
}

impl<'a> Guard<'a> {
    pub(super) fn new(ctx: &'a RunCtx<'a>, path: &str, kind: &str) -> Self {
        let start = Instant::now();
        Guard {
            ctx,
            start,
            record: StepRecord {
                path: path.to_string(),
                kind: kind.to_string(),
                plugin: None,
                version: None,
                status: StepStatus::Cancelled,
                start_ms: ctx.ms(start),
                duration_ms: 0.0,
                attempts: Vec::new(),
                breaker_open: false,
                fallback: None,
                error: None,
            },
            done: false,
        }
    }

    pub(super) fn finish(&mut self, status: StepStatus, error: Option<&Failure>) {
        self.record.status = status;
        if let Some(f) = error {
            self.record.error = Some(ErrorRecord {
                kind: f.kind,
                message: f.message.clone(),
            });
        }
        self.done = true;
        self.push();
    }

    fn push(&mut self) {
        self.record.duration_ms = self.start.elapsed().as_secs_f64() * 1e3;
        // `push` runs once per guard (finish, or drop unfinished): move, don't clone.
        let record = std::mem::replace(&mut self.record, StepRecord::empty());
        self.ctx
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.push();
        }
    }
}
