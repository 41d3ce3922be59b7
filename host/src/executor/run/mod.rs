//! One run in progress: sequences and the composite patterns here, plugin
//! steps (attempts, breakers, fallbacks) in `plugin.rs`, step records in
//! `guard.rs`.

mod guard;
mod plugin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::{StreamExt, TryStreamExt};
use guard::Guard;
use plugin::Spread;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Inner;
use super::data::{Data, Doc};
use super::record::{Attempt, ErrorRecord, RunError, StepRecord, StepStatus};
use super::scope::Scope;
use crate::config::{DirGrant, Grants, Limits};
use crate::error::ErrorKind;
use crate::flow::{Flow, ForEach, Parallel, Step, StepKind, Switch};
use crate::registry::PluginSet;
use crate::runtime::events::EventSink;
use crate::runtime::{CallOptions, Context};

/// Why a step failed, with the path of the step where it started.
type Failure = RunError;

pub(super) fn cancelled() -> Failure {
    failure("", ErrorKind::Cancelled, "the run was cancelled")
}

fn failure(path: &str, kind: ErrorKind, message: impl Into<String>) -> Failure {
    let message = message.into();
    RunError {
        step: path.to_string(),
        kind,
        causes: vec![format!("step {path}: {kind}: {message}")],
        message,
    }
}

/// Wraps a child's failure in the failure of the composite step `path`.
fn caused(path: &str, what: &str, mut child: Failure) -> Failure {
    child.causes.insert(0, format!("{what} step {path} failed"));
    child
}

pub(super) struct RunCtx<'a> {
    exec: &'a Inner,
    flow: &'a Flow,
    plugins: &'a PluginSet,
    run_id: &'a str,
    started: Instant,
    deadline: Option<Instant>,
    events: Option<Arc<dyn EventSink>>,
    flow_dir: PathBuf,
    records: Mutex<Vec<StepRecord>>,
    /// The top-level scope as the run goes, for `on_error`.
    top: Mutex<Option<Scope>>,
}

impl<'a> RunCtx<'a> {
    pub(super) fn new(
        exec: &'a Inner,
        flow: &'a Flow,
        plugins: &'a PluginSet,
        run_id: &'a str,
        started: Instant,
        options: &super::RunOptions,
    ) -> Self {
        RunCtx {
            exec,
            flow,
            plugins,
            run_id,
            started,
            deadline: flow.timeout.map(|t| started + t),
            events: options.events.clone(),
            flow_dir: flow
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            // One record a top-level step: no regrowth for a plain sequence.
            records: Mutex::new(Vec::with_capacity(flow.steps.len())),
            top: Mutex::new(None),
        }
    }

    pub(super) fn into_records(self) -> Vec<StepRecord> {
        let mut records = self.records.into_inner().unwrap_or_else(|e| e.into_inner());
        records.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        records
    }

    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64() * 1e3
    }

    fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(super) async fn run_flow(
        &self,
        input: Result<Doc, String>,
    ) -> Result<Box<RawValue>, Failure> {
        let input = input.map_err(|msg| failure("input", ErrorKind::InvalidInput, msg))?;
        // Only a schema needs the input parsed; otherwise it passes as text.
        if self.flow.input_schema.is_some() {
            let value = input.value().map_err(|e| {
                let msg =
                    format!("the input cannot be checked against the flow's input_schema: {e}");
                failure("input", ErrorKind::InvalidInput, msg)
            })?;
            if let Err(msg) = self.flow.check_input(value) {
                return Err(failure(
                    "input",
                    ErrorKind::InvalidInput,
                    format!("the input does not match the flow's input_schema: {msg}"),
                ));
            }
        }
        let scope = Scope::new(input.clone(), self.run_id, &self.flow.name);
        let steps = self.run_steps(&self.flow.steps, scope, input, "", true, Spread::Inline);
        let result = match self.deadline {
            // A backstop: every attempt is already bounded by the time left.
            Some(d) => {
                match tokio::time::timeout_at((d + Duration::from_millis(100)).into(), steps).await
                {
                    Ok(r) => r,
                    Err(_) => Err(failure(
                        "",
                        ErrorKind::Deadline,
                        "the flow ran past its deadline",
                    )),
                }
            }
            None => steps.await,
        };
        match result {
            Ok(out) => Ok(out.into_raw()),
            Err(e) => {
                self.on_error(&e).await;
                Err(e)
            }
        }
    }

    /// A sequence: each step's output feeds the next, unless it says otherwise.
    fn run_steps<'s>(
        &'s self,
        steps: &'s [Step],
        mut scope: Scope,
        input: Doc,
        prefix: &'s str,
        top: bool,
        spread: Spread,
    ) -> BoxFuture<'s, Result<Doc, Failure>> {
        async move {
            let mut prev = input;
            for step in steps {
                let path = if prefix.is_empty() {
                    step.id.clone()
                } else {
                    format!("{prefix}.{}", step.id)
                };
                if let Some(out) = self
                    .run_step(step, &scope, prev.clone(), &path, spread)
                    .await?
                {
                    scope.push(&step.id, out.clone());
                    prev = out;
                    if top && self.flow.on_error.is_some() {
                        *self.top.lock().unwrap_or_else(|e| e.into_inner()) = Some(scope.clone());
                    }
                }
            }
            Ok(prev)
        }
        .boxed()
    }

    /// One step of any kind. `Ok(None)`: skipped, or failed under `continue_on_error`.
    async fn run_step(
        &self,
        step: &Step,
        scope: &Scope,
        default: Doc,
        path: &str,
        spread: Spread,
    ) -> Result<Option<Doc>, Failure> {
        let mut rec = Guard::new(self, path, step.kind.name());
        if let Some(cond) = &step.condition {
            match cond.eval_bool_in(scope) {
                Ok(true) => {}
                Ok(false) => {
                    rec.finish(StepStatus::Skipped, None);
                    return Ok(None);
                }
                Err(e) => {
                    let f = failure(path, ErrorKind::Expression, e.to_string());
                    rec.finish(StepStatus::Failed, Some(&f));
                    return Err(f);
                }
            }
        }
        let input = match &step.input {
            Some(t) => match t.render_in(scope) {
                Ok(v) => Data::from_value(v),
                Err(e) => {
                    let f = failure(path, ErrorKind::Expression, e.to_string());
                    rec.finish(StepStatus::Failed, Some(&f));
                    return Err(f);
                }
            },
            None => default,
        };
        let result = match &step.kind {
            StepKind::Plugin(p) => {
                self.run_plugin(step, p, scope, input, path, &mut rec, spread)
                    .await
            }
            other => {
                let composite = self.run_composite(other, scope, input, path, spread);
                match step
                    .timeout
                    .map(|t| self.remaining().map_or(t, |r| r.min(t)))
                {
                    Some(limit) => {
                        tokio::time::timeout(limit, composite)
                            .await
                            .unwrap_or_else(|_| {
                                Err(failure(
                                    path,
                                    ErrorKind::Deadline,
                                    format!(
                                        "the step ran past its timeout of {}",
                                        humantime::format_duration(limit)
                                    ),
                                ))
                            })
                    }
                    None => composite.await,
                }
            }
        };
        match result {
            Ok(out) => {
                let status = if rec.record.fallback.is_some() {
                    StepStatus::Recovered
                } else {
                    StepStatus::Succeeded
                };
                rec.finish(status, None);
                Ok(Some(out))
            }
            Err(f) if step.continue_on_error => {
                tracing::warn!(run = %self.run_id, step = %path, error = %f, "step failed; continue_on_error lets the flow go on");
                rec.finish(StepStatus::Continued, Some(&f));
                Ok(None)
            }
            Err(f) => {
                rec.finish(StepStatus::Failed, Some(&f));
                Err(f)
            }
        }
    }

    fn run_composite<'s>(
        &'s self,
        kind: &'s StepKind,
        scope: &'s Scope,
        input: Doc,
        path: &'s str,
        spread: Spread,
    ) -> BoxFuture<'s, Result<Doc, Failure>> {
        match kind {
            StepKind::Parallel(p) => self.run_parallel(p, scope, input, path).boxed(),
            StepKind::Switch(s) => self.run_switch(s, scope, input, path, spread).boxed(),
            StepKind::ForEach(f) => self.run_for_each(f, scope, path).boxed(),
            StepKind::Plugin(_) => unreachable!("plugin steps are not composite"),
        }
    }

    async fn run_parallel(
        &self,
        p: &Parallel,
        scope: &Scope,
        input: Doc,
        path: &str,
    ) -> Result<Doc, Failure> {
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
        .map_err(|f| caused(path, "parallel", f))?;
        let object: BTreeMap<&str, &RawValue> = outputs
            .iter()
            .map(|(id, out)| (*id, out.as_deref().map_or(RawValue::NULL, Data::raw)))
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
    ) -> Result<Doc, Failure> {
        for case in &s.cases {
            let hit = case
                .when
                .eval_bool_in(scope)
                .map_err(|e| failure(path, ErrorKind::Expression, e.to_string()))?;
            if hit {
                return self
                    .run_steps(&case.steps, scope.clone(), input, path, false, spread)
                    .await
                    .map_err(|f| caused(path, "switch", f));
            }
        }
        match &s.default {
            Some(steps) => self
                .run_steps(steps, scope.clone(), input, path, false, spread)
                .await
                .map_err(|f| caused(path, "switch", f)),
            None => Ok(Data::from_value(Value::Null)),
        }
    }

    async fn run_for_each(&self, f: &ForEach, scope: &Scope, path: &str) -> Result<Doc, Failure> {
        let items = f
            .items
            .render_in(scope)
            .map_err(|e| failure(path, ErrorKind::Expression, e.to_string()))?;
        let Value::Array(items) = items else {
            return Err(failure(
                path,
                ErrorKind::Expression,
                format!("`for_each` must give a list, got {}", kind_of(&items)),
            ));
        };
        let outputs: Vec<Doc> = futures::stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let item = Data::from_value(item);
                let item_scope = scope.with_item(item.clone(), i);
                async move {
                    let item_path = format!("{path}[{i}]");
                    self.run_steps(&f.steps, item_scope, item, &item_path, false, Spread::Task)
                        .await
                }
            })
            .buffered(f.max_concurrency.max(1))
            .try_collect()
            .await
            .map_err(|e| caused(path, "for_each", e))?;
        let array: Vec<&RawValue> = outputs.iter().map(|d| d.raw()).collect();
        Ok(Data::compose(&array))
    }

    async fn on_error(&self, err: &Failure) {
        let Some(call) = &self.flow.on_error else {
            return;
        };
        let mut rec = Guard::new(self, "on_error", "plugin");
        rec.record.plugin = Some(call.plugin.clone());
        let record = error_json(err);
        let scope = self.top.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let input = match (&call.input, scope) {
            (Some(t), Some(scope)) => t.render_in(&scope.with_error(record.clone())),
            (Some(t), None) => t.render(&json!({"input": null, "steps": {}, "error": record})),
            (None, _) => Ok(record),
        };
        let input = match input {
            Ok(v) => Data::from_value(v),
            Err(e) => {
                let f = failure("on_error", ErrorKind::Expression, e.to_string());
                rec.finish(StepStatus::Failed, Some(&f));
                return;
            }
        };
        let (result, attempt, version) = self
            .single_call(
                call,
                &input,
                self.limits(),
                &Grants::default(),
                "on_error",
                Spread::Inline,
            )
            .await;
        rec.record.version = version;
        rec.record.attempts.push(attempt);
        match result {
            Ok(_) => rec.finish(StepStatus::Succeeded, None),
            Err(f) => {
                tracing::warn!(run = %self.run_id, error = %f, "on_error handler failed");
                rec.finish(StepStatus::Failed, Some(&f));
            }
        }
    }

    fn outcome(
        &self,
        path: &str,
        result: Result<Box<RawValue>, crate::error::CallError>,
    ) -> Result<Doc, Failure> {
        result
            .map(Data::from_raw)
            .map_err(|e| failure(path, e.kind(), e.message()))
    }

    /// The record of one attempt; `cost` is its duration and fuel.
    fn attempt_record(
        &self,
        attempt: u32,
        start: Instant,
        (duration, fuel): (Duration, u64),
        result: &Result<Doc, Failure>,
    ) -> Attempt {
        Attempt {
            attempt,
            start_ms: self.ms(start),
            duration_ms: duration.as_secs_f64() * 1e3,
            fuel,
            error: result.as_ref().err().map(|f| ErrorRecord {
                kind: f.kind,
                message: f.message.clone(),
            }),
        }
    }

    fn limits(&self) -> &Limits {
        self.exec.host.config().default_limits()
    }

    fn context(&self, step_id: &str, attempt: u32, config: &str) -> Context {
        Context {
            flow: self.flow.name.clone(),
            run_id: self.run_id.to_string(),
            step_id: step_id.to_string(),
            attempt,
            config: config.to_string(),
        }
    }

    /// Grants with relative directories resolved against the flow file's folder.
    fn call_options(&self, grants: &Grants) -> CallOptions {
        let dirs = grants
            .dirs
            .iter()
            .map(|d| DirGrant {
                host: if d.host.is_relative() {
                    self.flow_dir.join(&d.host)
                } else {
                    d.host.clone()
                },
                ..d.clone()
            })
            .collect();
        CallOptions {
            limits: None,
            grants: Grants {
                dirs,
                ..grants.clone()
            },
            events: self.events.clone(),
        }
    }
}

fn error_json(err: &Failure) -> Value {
    json!({"step": err.step, "kind": err.kind, "message": err.message, "causes": err.causes})
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
