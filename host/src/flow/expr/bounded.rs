//! Evaluations under their [`Bounds`], without holding an async worker for
//! long: an evaluation starts inline, which keeps cheap expressions cheap;
//! one that outgrows its slice (or reads large variables) is dropped and
//! run again, from the start, on the blocking pool, where the run's deadline,
//! the caps and cancel stop it. Expressions have no side effects, so running
//! one again changes nothing but the time it takes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::meter::{self, Bounds, Mode, Stop};
use super::{Bindings, ExprError};
use crate::error::ErrorKind;

/// An evaluation that failed at run time: the expression's error, and its
/// kind (`expression`; `deadline` at the run's deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError {
    pub(crate) kind: ErrorKind,
    pub(crate) error: ExprError,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for EvalError {}

/// Something to evaluate against a scope: a template or a condition.
pub(super) trait Job: Clone + Send + Sync + 'static {
    type Output: Send + 'static;
    fn eval(&self, scope: &dyn Bindings) -> Result<Self::Output, ExprError>;
    /// The text of its (first) expression, for an error of its own.
    fn source(&self) -> String;
}

/// Evaluates `job` on the calling thread under `bounds`, with no slice.
#[cfg(test)]
pub(super) fn eval_here<J: Job>(
    job: &J,
    scope: &dyn Bindings,
    bounds: &Bounds,
) -> Result<J::Output, EvalError> {
    let (result, stop) = meter::run(bounds, Mode::Blocking, None, || job.eval(scope));
    finish(result, stop)
}

/// Evaluates `job` under `bounds`: inline, or on the blocking pool when it
/// needs longer. Dropping the future stops an evaluation running there.
pub(super) async fn eval<J: Job, B: Bindings + Send + 'static>(
    job: &J,
    scope: B,
    bounds: &Bounds,
) -> Result<J::Output, EvalError> {
    let (result, stop) = meter::run(bounds, Mode::Inline, None, || job.eval(&scope));
    if stop != Some(Stop::Slice) {
        return finish(result, stop);
    }
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let (job, bounds) = (job.clone(), bounds.clone());
    let source = job.clone();
    let task = tokio::task::spawn_blocking(move || {
        let (result, stop) = meter::run(&bounds, Mode::Blocking, Some(flag), || job.eval(&scope));
        finish(result, stop)
    });
    let out = task.await.unwrap_or_else(|e| {
        Err(EvalError {
            kind: ErrorKind::Expression,
            error: ExprError {
                expr: source.source(),
                message: format!("the evaluation failed: {e}"),
            },
        })
    });
    drop(cancel);
    out
}

/// The result of an evaluation, with the kind its stop gives it.
fn finish<T>(result: Result<T, ExprError>, stop: Option<Stop>) -> Result<T, EvalError> {
    result.map_err(|error| EvalError {
        kind: stop.map_or(ErrorKind::Expression, Stop::kind),
        error,
    })
}

/// Tells an evaluation on the blocking pool to stop when its future is
/// dropped (cancel, a timeout, a failed sibling).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
