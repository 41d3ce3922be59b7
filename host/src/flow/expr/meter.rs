//! The budget of one evaluation: comprehension steps, bytes of values built,
//! time (a per-evaluation limit and the run's deadline) and cancel.
//!
//! CEL functions are plain `fn`s with no state of their own, so the meter of
//! the evaluation running on a thread is a thread-local, installed for the
//! evaluation's duration ([`run`]). The calls the rewrite inserts
//! (`rewrite.rs`) and the bounded functions (`funcs.rs`) charge it; once it
//! has stopped, every later charge fails too, so an error that CEL swallows
//! (`error || true`) cannot let the evaluation go on.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::ErrorKind;
use crate::human::thousands;

/// The comprehension steps one evaluation may take: every iteration of
/// `map`, `filter`, `all`, `exists` and `exists_one`, and every element
/// `lists.range` makes.
pub(crate) const MAX_STEPS: u64 = 1_000_000;

/// The bytes of values one evaluation may build (strings, lists, maps; the
/// copies it makes included), counted as they are built: as much as a
/// guest call may hold by default.
pub(crate) const MAX_BYTES: u64 = 128 << 20;

/// How long an evaluation may run on an async worker before it is stopped
/// and run again on the blocking pool.
const INLINE_SLICE: Duration = Duration::from_millis(1);

/// Variables heavier than this ([`super::json::weight`]) are never read on an
/// async worker: their evaluation goes straight to the blocking pool.
const INLINE_WEIGHT: u64 = 8_192;

/// The bounds of every evaluation of a run.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// The run's deadline: past it, an evaluation stops with `deadline`.
    pub(crate) deadline: Option<Instant>,
    /// How long one evaluation may take.
    pub(crate) time_limit: Duration,
    /// See [`MAX_STEPS`].
    pub(crate) max_steps: u64,
    /// See [`MAX_BYTES`].
    pub(crate) max_bytes: u64,
}

impl Default for Bounds {
    /// No deadline; the default call timeout as the time limit.
    fn default() -> Self {
        Bounds {
            deadline: None,
            time_limit: crate::Limits::default().timeout,
            max_steps: MAX_STEPS,
            max_bytes: MAX_BYTES,
        }
    }
}

/// Why an evaluation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Steps(u64),
    Bytes(u64),
    TimeLimit(Duration),
    Deadline,
    Cancelled,
    /// The inline slice is used up: run it again off the async workers.
    Slice,
}

impl Stop {
    pub(super) fn message(self) -> String {
        match self {
            Stop::Steps(cap) => format!(
                "stopped after {} comprehension steps (the cap per evaluation)",
                thousands(cap)
            ),
            Stop::Bytes(cap) => format!(
                "stopped after building {} of values (the cap per evaluation)",
                bytes(cap)
            ),
            Stop::TimeLimit(limit) => format!(
                "stopped after {} (the time limit per evaluation)",
                humantime::format_duration(limit)
            ),
            Stop::Deadline => "stopped at the flow's deadline".into(),
            Stop::Cancelled => "stopped: the run was cancelled".into(),
            Stop::Slice => "moved off the async workers".into(),
        }
    }

    pub(super) fn kind(self) -> ErrorKind {
        match self {
            Stop::Deadline => ErrorKind::Deadline,
            Stop::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Expression,
        }
    }
}

/// Where an evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// On an async worker, for [`INLINE_SLICE`] at most.
    Inline,
    /// On a thread of its own (the blocking pool, or a test).
    Blocking,
}

struct Meter {
    steps: u64,
    bytes: u64,
    max_steps: u64,
    max_bytes: u64,
    slice_end: Option<Instant>,
    limit_at: Instant,
    time_limit: Duration,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
    stop: Option<Stop>,
}

impl Meter {
    fn check(&mut self) -> Result<(), Stop> {
        if let Some(stop) = self.stop {
            return Err(stop);
        }
        let now = Instant::now();
        let stop = if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            Stop::Cancelled
        } else if self.deadline.is_some_and(|d| now >= d) {
            Stop::Deadline
        } else if self.slice_end.is_some_and(|s| now >= s) {
            Stop::Slice
        } else if now >= self.limit_at {
            Stop::TimeLimit(self.time_limit)
        } else {
            return Ok(());
        };
        self.stop = Some(stop);
        Err(stop)
    }

    fn tick(&mut self, n: u64) -> Result<(), Stop> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.max_steps && self.stop.is_none() {
            self.stop = Some(Stop::Steps(self.max_steps));
        }
        self.check()
    }

    fn charge(&mut self, n: u64) -> Result<(), Stop> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.max_bytes && self.stop.is_none() {
            self.stop = Some(Stop::Bytes(self.max_bytes));
        }
        self.check()
    }
}

thread_local! {
    static METER: RefCell<Option<Meter>> = const { RefCell::new(None) };
}

/// Runs `f` under a fresh meter: its result, and why the meter stopped, if
/// it did.
pub(super) fn run<T>(
    bounds: &Bounds,
    mode: Mode,
    cancel: Option<Arc<AtomicBool>>,
    f: impl FnOnce() -> T,
) -> (T, Option<Stop>) {
    let now = Instant::now();
    let meter = Meter {
        steps: 0,
        bytes: 0,
        max_steps: bounds.max_steps,
        max_bytes: bounds.max_bytes,
        slice_end: (mode == Mode::Inline).then(|| now + INLINE_SLICE),
        limit_at: now + bounds.time_limit.min(Duration::from_secs(86_400)),
        time_limit: bounds.time_limit,
        deadline: bounds.deadline,
        cancel,
        stop: None,
    };
    // Uninstalled on the way out, even by a panic, so that a pooled thread
    // never carries a meter into its next evaluation.
    struct Installed;
    impl Drop for Installed {
        fn drop(&mut self) {
            METER.with_borrow_mut(|m| *m = None);
        }
    }
    METER.with_borrow_mut(|m| *m = Some(meter));
    let installed = Installed;
    let out = f();
    let stop = METER.with_borrow(|m| m.as_ref().and_then(|m| m.stop));
    drop(installed);
    (out, stop)
}

fn with(f: impl FnOnce(&mut Meter) -> Result<(), Stop>) -> Result<(), Stop> {
    METER.with_borrow_mut(|m| m.as_mut().map_or(Ok(()), f))
}

/// Counts `n` comprehension steps.
pub(super) fn tick(n: u64) -> Result<(), Stop> {
    with(|m| m.tick(n))
}

/// Counts `n` bytes built.
pub(super) fn charge(n: u64) -> Result<(), Stop> {
    with(|m| m.charge(n))
}

/// Checks the clock and cancel, for long work that neither steps nor builds.
pub(super) fn check() -> Result<(), Stop> {
    with(Meter::check)
}

/// Why the running evaluation stopped, if it did.
pub(super) fn stopped() -> Option<Stop> {
    METER.with_borrow(|m| m.as_ref().and_then(|m| m.stop))
}

/// Whether the running evaluation is inline (so [`admit`] needs a weight).
pub(super) fn inline() -> bool {
    METER.with_borrow(|m| m.as_ref().is_some_and(|m| m.slice_end.is_some()))
}

/// Admits variables of `weight` to an inline evaluation, or stops it so
/// that it runs off the async workers.
pub(super) fn admit(weight: u64) -> Result<(), Stop> {
    with(|m| {
        if m.slice_end.is_some() && weight > INLINE_WEIGHT {
            m.stop = Some(Stop::Slice);
            return Err(Stop::Slice);
        }
        Ok(())
    })
}

/// A byte count in words: `128 MiB`, or `1,500 bytes`.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", thousands(n >> 20))
    } else {
        format!("{} bytes", thousands(n))
    }
}
