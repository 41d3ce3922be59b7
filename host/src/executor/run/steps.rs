//! Sequences and the composite patterns: each step's condition, input and
//! outcome, then `parallel`, `switch` and `for_each`.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use serde_json::value::RawValue;

use std::sync::Arc;

use super::call::Spread;
use super::ctx::RunCtx;
use super::plugin::PluginRun;
use super::records::Guard;
use crate::error::ErrorKind;
use crate::executor::data::{Data, Doc};
use crate::executor::journal::KeptInput;
use crate::executor::outbox::Outbox;
use crate::executor::record::{RunError, StepStatus, StepType};
use crate::executor::scope::{Outcome, Scope};
use crate::flow::{EvalError, ForEach, Parallel, Step, StepKind, Switch, describe_json};

impl RunCtx<'_> {
    /// A sequence: each step's output feeds the next, unless it says
    /// otherwise. At the top (no `prefix`), the scope is kept for `on_error`.
    pub(super) fn run_steps<'s>(
        &'s self,
        steps: &'s [Step],
        mut scope: Scope,
        input: Doc,
        prefix: &'s str,
        spread: Spread,
    ) -> BoxFuture<'s, Result<Doc, RunError>> {
        let top = prefix.is_empty();
        async move {
            let mut prev = input;
            for step in steps {
                let path = if prefix.is_empty() {
                    step.id.clone()
                } else {
                    format!("{prefix}.{}", step.id)
                };
                let outcome = self
                    .run_step(step, &scope, prev.clone(), &path, spread)
                    .await?;
                if let Some(out) = outcome.output() {
                    prev = out.clone();
                }
                // Kept without an output too, so that reading it says why.
                scope.push(&step.id, outcome);
                if top && self.flow.on_error.is_some() {
                    *self.top.lock().unwrap_or_else(|e| e.into_inner()) = Some(scope.clone());
                }
            }
            Ok(prev)
        }
        .boxed()
    }

    /// One step of any kind: its output, or that it was skipped, or failed
    /// under `continue_on_error`.
    async fn run_step(
        &self,
        step: &Step,
        scope: &Scope,
        default: Doc,
        path: &str,
        spread: Spread,
    ) -> Result<Outcome, RunError> {
        let mut rec = Guard::start(&self.records, path, StepType::of(&step.kind))?;
        if let StepKind::Plugin(p) = &step.kind {
            // Named from the start, so a skipped or cancelled step names it too.
            rec.record.plugin = Some(p.plugin.clone());
        }
        // A plugin step journaled by an earlier life of the run is not
        // evaluated or called again: its recorded outcome stands.
        let replay = match &step.kind {
            StepKind::Plugin(_) => self.journal.as_ref().and_then(|j| j.replay(path)),
            _ => None,
        };
        let result = if let Some(replay) = replay {
            rec.replay(replay.record);
            self.hand_on(path, replay.emitted);
            replay.result
        } else {
            if let Some(f) = self.expired_at(path) {
                rec.finish(StepStatus::Failed, Some(&f));
                return Err(f);
            }
            let input = match self.step_input(step, scope, default, path).await {
                Ok(Some(input)) => input,
                Ok(None) => {
                    rec.finish(StepStatus::Skipped, None);
                    return Ok(Outcome::Skipped);
                }
                Err(f) => {
                    rec.finish(StepStatus::Failed, Some(&f));
                    return Err(f);
                }
            };
            match &step.kind {
                StepKind::Plugin(plugin) => {
                    // A journaled step's events wait for its result's entry.
                    let outbox = self
                        .journal
                        .as_ref()
                        .and(self.events())
                        .map(|sink| Arc::new(Outbox::new(sink)));
                    let at = PluginRun {
                        step,
                        plugin,
                        scope,
                        path,
                        spread,
                        outbox: outbox.clone(),
                    };
                    // Kept for the journal before the call takes it.
                    let journaled_input = self.journal.as_ref().and_then(|j| j.keep_input(&input));
                    if let Some(journal) = &self.journal {
                        journal.calling(path, rec.record.start_ms);
                    }
                    let result = self.run_plugin(&at, input, &mut rec).await;
                    let done = Done {
                        input: journaled_input,
                        result,
                        outbox,
                    };
                    self.journal_result(step, &rec, done).await
                }
                _ => self.run_composite(step, scope, input, path, spread).await,
            }
        };
        let status = final_status(step, &rec, &result);
        match result {
            Ok(out) => {
                rec.finish(status, None);
                Ok(Outcome::Output(out))
            }
            Err(f) if status == StepStatus::Continued => {
                tracing::warn!(run = %self.run_id, step = %path, error = %crate::printable::printable(&f.to_string()), "step failed; continue_on_error lets the flow go on");
                rec.finish(status, Some(&f));
                Ok(Outcome::Continued)
            }
            Err(f) => {
                rec.finish(status, Some(&f));
                Err(f)
            }
        }
    }

    /// Journals a plugin step's result, when the run has a journal, before
    /// the run goes on (waiting for the commit only when the step emitted
    /// events). A journal that fails ends the run failed, with `host`.
    async fn journal_result(
        &self,
        step: &Step,
        rec: &Guard<'_>,
        done: Done,
    ) -> Result<Doc, RunError> {
        let Done {
            input,
            result,
            outbox,
        } = done;
        let Some(journal) = &self.journal else {
            return result;
        };
        let status = final_status(step, rec, &result);
        let record = rec.snapshot(status, result.as_ref().err());
        let emitted = outbox.map(|o| o.take()).unwrap_or_default();
        match journal.completed(record, input, &result, &emitted).await {
            Ok(()) => {
                self.hand_on(&rec.record.path, emitted);
                result
            }
            Err(mut f) => {
                if let Err(failed) = result {
                    f.causes.push(format!("the step had failed: {failed}"));
                }
                Err(f)
            }
        }
    }

    /// Hands on the events of the journaled step at `path`.
    fn hand_on(&self, path: &str, events: Vec<crate::runtime::events::Event>) {
        if let (false, Some(sink)) = (events.is_empty(), self.events()) {
            sink.emit_journaled(&format!("{} {path}", self.run_id), events);
        }
    }

    /// A step's input: the one a rerun gave it, else its `input` mapping
    /// rendered, else `default`. `None` when its `if` is false.
    async fn step_input(
        &self,
        step: &Step,
        scope: &Scope,
        default: Doc,
        path: &str,
    ) -> Result<Option<Doc>, RunError> {
        if let Some(input) = self.journal.as_ref().and_then(|j| j.input_at(path)) {
            return Ok(Some(input));
        }
        if step.condition.is_none() && step.input.is_none() {
            return Ok(Some(default));
        }
        let bounds = self.expr_bounds();
        let failed = |e: EvalError| RunError::new(path, e.kind, e.to_string());
        if let Some(cond) = &step.condition
            && !cond
                .eval_bounded(scope.clone(), &bounds)
                .await
                .map_err(failed)?
        {
            return Ok(None);
        }
        Ok(Some(match &step.input {
            Some(t) => Data::from_value(
                t.render_bounded(scope.clone(), &bounds)
                    .await
                    .map_err(failed)?,
            ),
            None => default,
        }))
    }

    /// A composite step, within its `timeout` (and the flow's deadline).
    /// Boxed: composites nest, and so does this future.
    fn run_composite<'s>(
        &'s self,
        step: &'s Step,
        scope: &'s Scope,
        input: Doc,
        path: &'s str,
        spread: Spread,
    ) -> BoxFuture<'s, Result<Doc, RunError>> {
        let composite = match &step.kind {
            StepKind::Parallel(p) => self.run_parallel(p, scope, input, path).boxed(),
            StepKind::Switch(s) => self.run_switch(s, scope, input, path, spread).boxed(),
            StepKind::ForEach(f) => self.run_for_each(f, scope, path).boxed(),
            StepKind::Plugin(_) => unreachable!("plugin steps are not composite"),
        };
        let Some(limit) = step
            .timeout
            .map(|t| self.remaining().map_or(t, |r| r.min(t)))
        else {
            return composite;
        };
        async move {
            tokio::time::timeout(limit, composite)
                .await
                .unwrap_or_else(|_| {
                    Err(RunError::new(
                        path,
                        ErrorKind::Deadline,
                        format!(
                            "the step ran past its timeout of {}",
                            crate::duration::for_people(limit)
                        ),
                    ))
                })
        }
        .boxed()
    }

    async fn run_parallel(
        &self,
        p: &Parallel,
        scope: &Scope,
        input: Doc,
        path: &str,
    ) -> Result<Doc, RunError> {
        let branches = p.branches.iter().map(|b| {
            let branch_path = format!("{path}.{}", b.id);
            let input = input.clone();
            async move {
                self.run_step(b, scope, input, &branch_path, Spread::Task)
                    .await
                    .map(|out| (b.id.as_str(), out))
            }
        });
        let outputs = if p.fail_fast {
            // The first failure drops the other branches, aborting their calls.
            futures::future::try_join_all(branches).await
        } else {
            futures::future::join_all(branches)
                .await
                .into_iter()
                .collect()
        }
        .map_err(|f| f.within(StepType::Parallel, path))?;
        let object: BTreeMap<&str, &RawValue> = outputs
            .iter()
            .map(|(id, out)| (*id, out.output().map_or(RawValue::NULL, |d| d.raw())))
            .collect();
        Ok(Data::compose(&object))
    }

    async fn run_switch(
        &self,
        s: &Switch,
        scope: &Scope,
        input: Doc,
        path: &str,
        spread: Spread,
    ) -> Result<Doc, RunError> {
        let mut chosen = s.default.as_deref();
        for case in &s.cases {
            let hit = case
                .when
                .eval_bounded(scope.clone(), &self.expr_bounds())
                .await
                .map_err(|e| RunError::new(path, e.kind, e.to_string()))?;
            if hit {
                chosen = Some(&case.steps);
                break;
            }
        }
        // No case taken: the input passes on, as through a case whose
        // steps were all skipped.
        let Some(steps) = chosen else {
            return Ok(input);
        };
        self.run_steps(steps, scope.clone(), input, path, spread)
            .await
            .map_err(|f| f.within(StepType::Switch, path))
    }

    async fn run_for_each(&self, f: &ForEach, scope: &Scope, path: &str) -> Result<Doc, RunError> {
        let items = f
            .items
            .render_bounded(scope.clone(), &self.expr_bounds())
            .await
            .map_err(|e| RunError::new(path, e.kind, e.to_string()))?;
        let Value::Array(items) = items else {
            return Err(RunError::new(
                path,
                ErrorKind::Expression,
                format!("`for_each` must give a list, got {}", describe_json(&items)),
            ));
        };
        self.records
            .room_for_items(path, items.len(), f.steps.len())?;
        // Items finish in any order; the first failure ends the step, and
        // dropping the stream drops the items in flight, stopping their calls.
        let mut outputs: Vec<Option<Doc>> = vec![None; items.len()];
        let mut finished = futures::stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let item = Data::from_value(item);
                let item_scope = scope.with_item(item.clone(), i);
                async move {
                    let item_path = format!("{path}[{i}]");
                    let out = self
                        .run_steps(&f.steps, item_scope, item, &item_path, Spread::Task)
                        .await;
                    (i, out)
                }
            })
            .buffer_unordered(f.max_concurrency.max(1));
        while let Some((i, out)) = finished.next().await {
            outputs[i] = Some(out.map_err(|e| e.within(StepType::ForEach, path))?);
        }
        let array: Vec<&RawValue> = outputs.iter().flatten().map(|d| d.raw()).collect();
        Ok(Data::compose(&array))
    }
}

/// What becomes of a step with `result`: `recovered` when its fallback
/// answered, `continued` when `continue_on_error` lets the flow go on past
/// its failure (not past the step cap, which would only refuse again).
fn final_status(step: &Step, rec: &Guard<'_>, result: &Result<Doc, RunError>) -> StepStatus {
    match result {
        Ok(_) if rec.record.fallback.is_some() => StepStatus::Recovered,
        Ok(_) => StepStatus::Succeeded,
        Err(f) if step.continue_on_error && f.kind != ErrorKind::TooManySteps => {
            StepStatus::Continued
        }
        Err(_) => StepStatus::Failed,
    }
}

/// A plugin step's call as it ended, for its journal entry.
struct Done {
    /// The input it was called with, as its entry keeps it.
    input: Option<KeptInput>,
    result: Result<Doc, RunError>,
    outbox: Option<Arc<Outbox>>,
}
