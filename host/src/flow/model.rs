//! The flow model: what a flow file says, checked and compiled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Pos;
use super::expr::{Condition, Template};
use crate::{ErrorKind, Grants, Limits};

/// A checked flow. Cheap to clone (expressions and the schema are shared),
/// `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow's name (`flow:`).
    pub(crate) name: String,
    /// The file it was loaded from.
    pub(crate) file: PathBuf,
    /// Deadline for a whole run (`timeout:`).
    pub(crate) timeout: Option<Duration>,
    /// JSON Schema for the flow input (`input_schema:`), compiled.
    pub(crate) input_schema: Option<InputSchema>,
    /// Topic patterns that start the flow (`triggers:`).
    pub(crate) triggers: Vec<Trigger>,
    /// At most this many runs of the flow in flight (`concurrency: {limit}`).
    pub(crate) concurrency: Option<u32>,
    /// The top-level steps, in order.
    pub(crate) steps: Vec<Step>,
    /// Runs with the error record when the flow fails (`on_error:`).
    pub(crate) on_error: Option<PluginCall>,
    /// The text it was parsed from, and its SHA-256 (hex): a run records
    /// which version it started with, and resumes on it.
    pub(crate) source: Source,
}

/// A flow file's text and its content hash.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source {
    pub(crate) text: std::sync::Arc<str>,
    pub(crate) hash: String,
}

impl Source {
    pub(crate) fn of(text: &str) -> Source {
        use sha2::Digest;
        let hash = crate::cache::hex(&sha2::Sha256::digest(text.as_bytes()));
        Source {
            text: text.into(),
            hash,
        }
    }
}

impl Flow {
    /// The flow's name (`flow:`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The SHA-256 (hex) of the text it was parsed from: its version.
    pub fn hash(&self) -> &str {
        &self.source.hash
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source.text
    }

    /// How many steps it has, nested steps (branches, cases, items' steps)
    /// included.
    pub fn step_count(&self) -> usize {
        self.all_steps().len()
    }

    /// How many top-level steps it has (`steps:`), nested ones not counted.
    pub fn top_level_step_count(&self) -> usize {
        self.steps.len()
    }

    #[cfg(test)]
    /// Checks a flow input against `input_schema` (always `Ok` without one).
    ///
    /// # Errors
    /// Every violation, as `input<json-pointer>: <what is wrong>` (for
    /// example `input/amount: "x" is not of type "number"`), joined with `; `.
    pub(crate) fn check_input(&self, input: &Value) -> Result<(), String> {
        match &self.input_schema {
            Some(schema) => schema.check(input),
            None => Ok(()),
        }
    }

    /// Every step, nested ones included, depth first in document order.
    pub(crate) fn all_steps(&self) -> Vec<&Step> {
        let mut out = Vec::new();
        for step in &self.steps {
            step.walk(&mut |s| out.push(s));
        }
        out
    }

    /// Every plugin name the flow uses: plugin steps, fallbacks and
    /// `on_error`, sorted and without repeats.
    pub fn plugin_names(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for step in self.all_steps() {
            if let StepKind::Plugin(p) = &step.kind {
                names.insert(p.plugin.as_str());
                if let Some(f) = &p.fallback {
                    names.insert(f.plugin.as_str());
                }
            }
        }
        if let Some(h) = &self.on_error {
            names.insert(h.plugin.as_str());
        }
        names
    }

    #[cfg(test)]
    /// The step with this id, wherever it is nested.
    pub(crate) fn step(&self, id: &str) -> Option<&Step> {
        self.all_steps().into_iter().find(|s| s.id == id)
    }

    /// Whether a topic matches one of the flow's triggers.
    pub(crate) fn triggered_by(&self, topic: &str) -> bool {
        self.triggers.iter().any(|t| t.matches(topic))
    }
}

/// A compiled `input_schema`.
#[derive(Clone)]
pub(crate) struct InputSchema {
    /// The schema as written.
    pub(crate) schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Which compiled schema accepted an input (the same `Arc`), without holding
/// the flow.
#[derive(Clone)]
pub(crate) struct SchemaId(Arc<jsonschema::Validator>);

impl InputSchema {
    /// This schema's identity.
    pub(crate) fn id(&self) -> SchemaId {
        SchemaId(self.validator.clone())
    }

    /// Whether `id` is this schema.
    pub(crate) fn is(&self, id: &SchemaId) -> bool {
        Arc::ptr_eq(&self.validator, &id.0)
    }

    #[cfg(test)]
    /// Compiles a schema.
    ///
    /// # Errors
    /// What is wrong with the schema, and where in it (`at /properties/n`),
    /// every problem joined with `; `.
    pub(crate) fn compile(schema: &Value) -> Result<InputSchema, String> {
        InputSchema::compile_at(schema).map_err(|problems| {
            let texts: Vec<String> = problems
                .into_iter()
                .map(|(pointer, message)| {
                    if pointer.is_empty() {
                        message
                    } else {
                        format!("at {pointer}: {message}")
                    }
                })
                .collect();
            texts.join("; ")
        })
    }

    /// As [`InputSchema::compile`], each problem split into the JSON
    /// pointer of the faulty part of the schema and the message.
    pub(crate) fn compile_at(schema: &Value) -> Result<InputSchema, Vec<(String, String)>> {
        match jsonschema::validator_for(schema) {
            Ok(validator) => Ok(InputSchema {
                schema: schema.clone(),
                validator: Arc::new(validator),
            }),
            Err(first) => Err(every_problem(schema, &first)),
        }
    }
    /// Checks a value (see [`Flow::check_input`]).
    ///
    /// # Errors
    /// Every violation, naming the failing field path.
    pub(crate) fn check(&self, input: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(input)
            .map(|e| format!("input{}: {e}", e.instance_path().as_str()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Every problem of a schema that does not compile: building a validator
/// stops at the first, so the schema is also checked against its
/// meta-schema, which lists them all. The build error comes first, and is
/// kept when the meta-schema does not see it (a bad `$ref`, a bad regex).
fn every_problem(schema: &Value, first: &jsonschema::ValidationError<'_>) -> Vec<(String, String)> {
    let mut problems = vec![(
        first.instance_path().as_str().to_string(),
        first.to_string(),
    )];
    if let Ok(meta) = jsonschema::meta::validator_for(schema) {
        for e in meta.iter_errors(schema) {
            let problem = (e.instance_path().as_str().to_string(), e.to_string());
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// A trigger: an event topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trigger {
    /// The topic pattern; `*` matches any run of characters (dots included).
    pub(crate) event: String,
    /// Where it is written.
    pub(crate) pos: Pos,
}

impl Trigger {
    /// Whether `topic` matches the pattern.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        glob(self.event.as_bytes(), topic.as_bytes())
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// One step.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The id, unique in the whole flow.
    pub(crate) id: String,
    /// What the step does.
    pub(crate) kind: StepKind,
    /// The input mapping (`input:`). `None`: the previous step's output (the
    /// flow input for a first step; see the module docs for nested steps).
    pub(crate) input: Option<Template>,
    /// Skip the step when false (`if:`).
    pub(crate) condition: Option<Condition>,
    /// A deadline: for a plugin step, per attempt; for the others, for the
    /// whole step (`timeout:`).
    pub(crate) timeout: Option<Duration>,
    /// On failure, record the error and go on (`continue_on_error:`, default
    /// false). The step then has no output: the next step receives what this
    /// step received.
    pub(crate) continue_on_error: bool,
}

impl Step {
    /// Calls `f` on this step and every step nested in it, depth first.
    pub(crate) fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Step)) {
        f(self);
        for child in self.children() {
            child.walk(f);
        }
    }

    /// The steps directly nested in this one, in document order.
    pub(crate) fn children(&self) -> Vec<&Step> {
        match &self.kind {
            StepKind::Plugin(_) => Vec::new(),
            StepKind::Parallel(p) => p.branches.iter().collect(),
            StepKind::Switch(s) => s
                .cases
                .iter()
                .flat_map(|c| c.steps.iter())
                .chain(s.default.iter().flatten())
                .collect(),
            StepKind::ForEach(f) => f.steps.iter().collect(),
        }
    }

    #[cfg(test)]
    /// The plugin step, if this is one.
    pub(crate) fn plugin(&self) -> Option<&PluginStep> {
        match &self.kind {
            StepKind::Plugin(p) => Some(&**p),
            _ => None,
        }
    }
}

/// What a step does: exactly one of these.
#[derive(Debug, Clone)]
pub(crate) enum StepKind {
    /// Call a plugin (`plugin:`).
    Plugin(Box<PluginStep>),
    /// Run branches concurrently (`parallel:`).
    Parallel(Parallel),
    /// Run the first matching case (`switch:`).
    Switch(Switch),
    /// Run a sub-pipeline per item of an array (`for_each:` + `steps:`).
    ForEach(ForEach),
}

/// A plugin call with its policies.
#[derive(Debug, Clone)]
pub(crate) struct PluginStep {
    /// The plugin name (the file stem in the plugins folder).
    pub(crate) plugin: String,
    /// Passed to the step as `ctx.config` (`config:`, default `null`). Not
    /// rendered: `${...}` in it is passed as text.
    pub(crate) config: Value,
    /// Retries (`retry:`). Without a `retry:` block, one attempt.
    pub(crate) retry: RetryPolicy,
    /// A circuit breaker for this step (`circuit_breaker:`).
    pub(crate) circuit_breaker: Option<CircuitBreaker>,
    /// Called when the step fails for good (`fallback:`).
    pub(crate) fallback: Option<PluginCall>,
    /// Capabilities (`allow:`). Relative host paths are resolved against
    /// the flow file's folder when the step runs.
    pub(crate) grants: Grants,
    /// Limit overrides (`limits:`).
    pub(crate) limits: LimitOverrides,
    /// `replay: safe`: replaying a recorded call of it (`flowhost replay`,
    /// the serve-side replay gate) keeps its grants; without it, a step
    /// with grants is not replayed.
    pub(crate) replay_safe: bool,
}

/// Limits a step overrides; the rest come from the host's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitOverrides {
    /// `limits: {fuel: N}`.
    pub(crate) fuel: Option<u64>,
    /// `limits: {memory: 64MiB}`, in bytes.
    pub(crate) max_memory: Option<u64>,
}

impl LimitOverrides {
    /// `base` with these overrides and, when given, the per-attempt timeout.
    pub(crate) fn apply(&self, base: &Limits, timeout: Option<Duration>) -> Limits {
        let mut limits = base.clone();
        if let Some(fuel) = self.fuel {
            limits.fuel = Some(fuel);
        }
        if let Some(mem) = self.max_memory {
            limits.max_memory = mem;
        }
        if let Some(t) = timeout {
            limits.timeout = t;
        }
        limits
    }
}

/// A plugin call without policies: a fallback, or `on_error`.
#[derive(Debug, Clone)]
pub(crate) struct PluginCall {
    /// The plugin name.
    pub(crate) plugin: String,
    /// The input mapping. `None`: for a fallback, the failed step's input;
    /// for `on_error`, the error record.
    pub(crate) input: Option<Template>,
    /// Passed as `ctx.config` (default `null`).
    pub(crate) config: Value,
}

/// Concurrent branches. The output is `{branch_id: output}`.
#[derive(Debug, Clone)]
pub(crate) struct Parallel {
    /// The branches: full steps.
    pub(crate) branches: Vec<Step>,
    /// Cancel the other branches on the first failure (`fail_fast:`,
    /// default true).
    pub(crate) fail_fast: bool,
}

/// The first case whose `when` holds runs; the output is that case's
/// output (its last step's).
#[derive(Debug, Clone)]
pub(crate) struct Switch {
    /// The cases with a `when`, in order.
    pub(crate) cases: Vec<SwitchCase>,
    /// The `default` case's steps, run when no case matches.
    pub(crate) default: Option<Vec<Step>>,
}

/// One case of a switch.
#[derive(Debug, Clone)]
pub(crate) struct SwitchCase {
    /// When the case runs.
    pub(crate) when: Condition,
    /// The case's steps, run in order.
    pub(crate) steps: Vec<Step>,
}

/// Fan-out over an array: the sub-pipeline runs once per item. The output is
/// the array of the pipelines' outputs, in item order.
#[derive(Debug, Clone)]
pub(crate) struct ForEach {
    /// The array (`for_each:`), usually `"${...}"`.
    pub(crate) items: Template,
    /// At most this many items in flight (`max_concurrency:`, default
    /// [`ForEach::DEFAULT_MAX_CONCURRENCY`]).
    pub(crate) max_concurrency: usize,
    /// The sub-pipeline (`steps:`), which sees `item` and `index`.
    pub(crate) steps: Vec<Step>,
}

impl ForEach {
    /// The default `max_concurrency`: 16.
    pub(crate) const DEFAULT_MAX_CONCURRENCY: usize = 16;
}

/// How a failing step is retried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Total attempts, at least 1. Default: 1 without a `retry:` block, 3
    /// with one.
    pub(crate) max_attempts: u32,
    /// The delay before the second attempt. Default: 100ms.
    pub(crate) initial_interval: Duration,
    /// Each delay is this many times the one before, at least 1.0.
    /// Default: 2.0.
    pub(crate) backoff_coefficient: f64,
    /// The longest delay. Default: 10s.
    pub(crate) max_interval: Duration,
    /// How delays are randomised. Default: full.
    pub(crate) jitter: Jitter,
    /// Error kinds never retried.
    pub(crate) non_retryable: Vec<ErrorKind>,
    /// When given, only these error kinds are retried.
    pub(crate) retry_on: Option<Vec<ErrorKind>>,
}

impl Default for RetryPolicy {
    /// One attempt, no retries.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_interval: Duration::from_millis(100),
            backoff_coefficient: 2.0,
            max_interval: Duration::from_secs(10),
            jitter: Jitter::Full,
            non_retryable: Vec::new(),
            retry_on: None,
        }
    }
}

impl RetryPolicy {
    /// The default policy of a `retry:` block: 3 attempts.
    pub(crate) fn block_default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        }
    }

    /// Whether `non_retryable` and `retry_on` may name this kind: the kinds
    /// of a call, and `circuit-open`. The other kinds of the flow
    /// (`expression`, `plugin-not-found`, `cancelled`) never come from an
    /// attempt.
    pub(crate) fn accepts(kind: ErrorKind) -> bool {
        kind.is_call_kind() || kind == ErrorKind::CircuitOpen
    }

    /// Whether an error of this kind may be retried, attempts left aside:
    /// - a kind in `non_retryable`: never;
    /// - with `retry_on`: only the kinds listed;
    /// - otherwise `transient`, `deadline` and `host`. `permanent`,
    ///   `invalid-input`, `output-too-large` and `circuit-open` are not
    ///   retried, and `trap`, `fuel` and `memory` only when in `retry_on`.
    pub(crate) fn should_retry(&self, kind: ErrorKind) -> bool {
        if self.non_retryable.contains(&kind) {
            return false;
        }
        match &self.retry_on {
            Some(kinds) => kinds.contains(&kind),
            None => matches!(
                kind,
                ErrorKind::Transient | ErrorKind::Deadline | ErrorKind::Host
            ),
        }
    }

    /// The delay after failed attempt number `attempt` (1 for the first),
    /// before the next: `initial_interval * backoff_coefficient^(attempt-1)`,
    /// capped at `max_interval`, then jittered with `rng` (a random number
    /// in `[0, 1)`): `none` keeps it, `full` takes `delay * rng`, `equal`
    /// takes `delay/2 + delay/2 * rng`.
    pub(crate) fn backoff(&self, attempt: u32, rng: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(1000) as i32;
        let max = self.max_interval.as_secs_f64();
        let base =
            (self.initial_interval.as_secs_f64() * self.backoff_coefficient.powi(exp)).min(max);
        let rng = rng.clamp(0.0, 1.0);
        let delay = match self.jitter {
            Jitter::None => base,
            Jitter::Full => base * rng,
            Jitter::Equal => base / 2.0 + base / 2.0 * rng,
        };
        Duration::from_secs_f64(delay.max(0.0))
    }
}

/// How retry delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Jitter {
    /// The computed delay.
    None,
    /// Uniform in `[0, delay)`.
    #[default]
    Full,
    /// Uniform in `[delay/2, delay)`.
    Equal,
}

/// A circuit breaker: after `failure_threshold` failures in a row the
/// circuit opens and calls fail at once with `circuit-open`; after
/// `reset_timeout` one trial call is let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CircuitBreaker {
    /// Failures in a row that open the circuit, at least 1. Default: 5.
    pub(crate) failure_threshold: u32,
    /// How long the circuit stays open. Default: 30s.
    pub(crate) reset_timeout: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
        }
    }
}
