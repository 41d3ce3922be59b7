//! The run record: what happened in a run, step by step and attempt by attempt.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ErrorKind;
use crate::flow::{Flow, StepKind};

/// Where a run is in its life. The same words appear in the API, the record
/// and the metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunStatus {
    /// Accepted, not started.
    Queued,
    /// Started, not finished.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped before it finished.
    Cancelled,
}

impl RunStatus {
    /// The status word.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
        .ok_or_else(|| "expected queued, running, succeeded, failed or cancelled".to_string())
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct RunRecord {
    /// The run's id, also the correlation id in logs.
    pub run_id: String,
    /// The flow's name.
    pub flow: String,
    /// Where the run ended (or is).
    pub status: RunStatus,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// The flow's output, when it succeeded: JSON text as the last step wrote
    /// it, never parsed on the way. [`RunRecord::output_value`] parses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub output: Option<Box<RawValue>>,
    /// Set when a copy of the record kept for later (the server's run
    /// history) left out an output too large to keep: `output` is absent,
    /// and this says how large it was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_trimmed: Option<OutputTrimmed>,
    /// Why it failed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Every step that started, branches and items included, in start order.
    pub steps: Vec<StepRecord>,
    /// The server that ran it, when several share a store.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub worker: Option<String>,
}

impl RunRecord {
    /// The record of a run that never ran a step: refused for its input, or
    /// cancelled while queued.
    pub(crate) fn not_run(run_id: String, flow: &Flow, status: RunStatus, error: RunError) -> Self {
        RunRecord {
            run_id,
            flow: flow.name.clone(),
            status,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0.0,
            output: None,
            output_trimmed: None,
            error: Some(error),
            steps: Vec::new(),
            worker: None,
        }
    }

    /// The output parsed as a value, when the run succeeded. `None` also
    /// for valid JSON that serde_json cannot parse into a value: nested over
    /// 128 levels, or with a number beyond a double.
    pub fn output_value(&self) -> Option<Value> {
        serde_json::from_str(self.output.as_ref()?.get()).ok()
    }
}

/// An output left out of a kept record: `{"bytes": 1900000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct OutputTrimmed {
    /// The size of the output, in bytes of JSON text.
    pub bytes: u64,
}

impl OutputTrimmed {
    pub(crate) fn new(bytes: u64) -> Self {
        OutputTrimmed { bytes }
    }
}

/// Why a run failed: the step path that failed and the chain of causes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct RunError {
    /// The id path of the failing step, for example `lines[3].price`.
    pub step: String,
    /// The error kind.
    pub kind: ErrorKind,
    /// The failing step's message.
    pub message: String,
    /// From the outermost step to the root cause.
    pub causes: Vec<String>,
}

impl RunError {
    /// A failure of the step at `path` (`""`: of the run as a whole), the
    /// root of its causes.
    pub(crate) fn new(path: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        let cause = if path.is_empty() {
            format!("{kind}: {message}")
        } else {
            format!("step {path}: {kind}: {message}")
        };
        RunError {
            step: path.to_string(),
            kind,
            causes: vec![cause],
            message,
        }
    }

    /// The run was cancelled while the steps at `running` ran (innermost
    /// paths): `step` lists them, comma-separated; `""` when none was.
    pub(crate) fn cancelled(running: &[&str]) -> Self {
        let message = match running {
            [] => "the run was cancelled while no step was running".to_string(),
            [one] => format!("the run was cancelled while step {one} was running"),
            many => format!(
                "the run was cancelled while steps {} were running",
                many.join(", ")
            ),
        };
        let mut error = RunError::new("", ErrorKind::Cancelled, message);
        if !running.is_empty() {
            error.step = running.join(", ");
            error.causes = running
                .iter()
                .map(|p| format!("step {p}: {}: the run was cancelled", ErrorKind::Cancelled))
                .collect();
        }
        error
    }

    /// This failure, as the cause of the failure of composite step `path`
    /// (`what`: `parallel`, `switch`, `for_each`).
    pub(crate) fn within(mut self, what: StepType, path: &str) -> Self {
        self.causes.insert(0, format!("{what} step {path} failed"));
        self
    }

    /// What a fallback or `on_error` sees as `error`.
    pub(crate) fn to_value(&self) -> Value {
        serde_json::json!({
            "step": self.step, "kind": self.kind, "message": self.message, "causes": self.causes,
        })
    }

    /// The kind and message, as a step or attempt records them.
    pub(crate) fn record(&self) -> ErrorRecord {
        ErrorRecord {
            kind: self.kind,
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.step.as_str()) {
            // Its message names the steps it stopped, if any.
            (ErrorKind::Cancelled, _) => f.write_str(&self.message),
            // A failure of the run as a whole, not of one step.
            (kind, "") => write!(f, "{kind}: {}", self.message),
            (kind, step) => write!(f, "step {step} failed: {kind}: {}", self.message),
        }
    }
}

/// The innermost steps of `steps` that were still running `at` ms into the
/// run, when it was cancelled: recorded as cancelled, ending after `at`
/// (within a microsecond, for rounding).
pub(crate) fn running_at(steps: &[StepRecord], at: f64) -> Vec<&str> {
    let stopped: Vec<&str> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Cancelled && s.start_ms + s.duration_ms >= at - 1e-3)
        .map(|s| s.path.as_str())
        .collect();
    // A composite's children are `path.id` or `path[i].id`.
    let encloses = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    stopped
        .iter()
        .filter(|p| !stopped.iter().any(|q| encloses(p, q)))
        .copied()
        .collect()
}

/// What became of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StepStatus {
    /// It produced an output.
    Succeeded,
    /// It failed, and so did its fallback if it had one.
    Failed,
    /// It failed, and its fallback produced the output.
    Recovered,
    /// It failed, and `continue_on_error` let the flow go on.
    Continued,
    /// Its `if` was false.
    Skipped,
    /// It was stopped: the run was cancelled or a fail-fast sibling failed.
    Cancelled,
}

/// What kind of step a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepType {
    /// A plugin call (also a fallback's step and `on_error`).
    Plugin,
    /// Concurrent branches.
    Parallel,
    /// The first matching case.
    Switch,
    /// A sub-pipeline per item.
    ForEach,
}

impl StepType {
    /// The word in the record: `plugin`, `parallel`, `switch`, `for_each`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Plugin => "plugin",
            StepType::Parallel => "parallel",
            StepType::Switch => "switch",
            StepType::ForEach => "for_each",
        }
    }

    pub(crate) fn of(kind: &StepKind) -> Self {
        match kind {
            StepKind::Plugin(_) => StepType::Plugin,
            StepKind::Parallel(_) => StepType::Parallel,
            StepKind::Switch(_) => StepType::Switch,
            StepKind::ForEach(_) => StepType::ForEach,
        }
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step (or branch, or item) of a run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct StepRecord {
    /// The id path, for example `enrich.user` or `lines[3].price`.
    pub path: String,
    /// What kind of step it is.
    pub kind: StepType,
    /// The plugin, for plugin steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The plugin version used (content hash), for plugin steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What became of it.
    pub status: StepStatus,
    /// Start, in milliseconds since the run started.
    pub start_ms: f64,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// Each attempt, for plugin steps.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attempts: Vec<Attempt>,
    /// Whether the circuit breaker refused the call.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub breaker_open: bool,
    /// The fallback, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<FallbackRecord>,
    /// The error, when it failed (or was recovered or continued past).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
}

impl StepRecord {
    pub(crate) fn empty() -> Self {
        StepRecord {
            path: String::new(),
            kind: StepType::Plugin,
            plugin: None,
            version: None,
            status: StepStatus::Cancelled,
            start_ms: 0.0,
            duration_ms: 0.0,
            attempts: Vec::new(),
            breaker_open: false,
            fallback: None,
            error: None,
        }
    }

    /// The path with its `for_each` indices dropped (`lines[3].price` →
    /// `lines[].price`): one name for the step across every item, as
    /// metrics labels and per-step figures group it.
    pub fn path_without_indices(&self) -> String {
        let mut out = String::with_capacity(self.path.len());
        let mut in_index = false;
        for c in self.path.chars() {
            match c {
                '[' => {
                    in_index = true;
                    out.push(c);
                }
                ']' => {
                    in_index = false;
                    out.push(c);
                }
                _ if in_index => {}
                _ => out.push(c),
            }
        }
        out
    }
}

/// One attempt of a plugin step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first try.
    pub attempt: u32,
    /// Start, in milliseconds since the run started.
    pub start_ms: f64,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// Fuel used; `None` (absent) when unknown: a cancelled attempt's
    /// guest was dropped mid-call, its count with it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fuel: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// The largest linear memory the guest had, in bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_memory: Option<u64>,
    /// The guest's first output lines (`log`, stdout, stderr), at most 50.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub logs: Vec<crate::runtime::LogLine>,
    /// Lines the guest wrote that `logs` does not hold: past its 50, or
    /// past the call's log budget.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub logs_dropped: u64,
    /// A mock answered instead of the plugin (`flowhost test`).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub mocked: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A kind and a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct ErrorRecord {
    /// The error kind.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

/// The fallback of a step, when it ran.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct FallbackRecord {
    /// The fallback plugin.
    pub plugin: String,
    /// Its version (content hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its one attempt.
    pub attempt: Attempt,
}

#[cfg(test)]
mod tests {
    use super::StepRecord;

    fn without_indices(path: &str) -> String {
        StepRecord {
            path: path.into(),
            ..StepRecord::empty()
        }
        .path_without_indices()
    }

    #[test]
    fn item_paths_lose_their_index() {
        assert_eq!(without_indices("lines[3].price"), "lines[].price");
        assert_eq!(without_indices("squares[12].work"), "squares[].work");
        assert_eq!(without_indices("a[1].b[22].c"), "a[].b[].c");
        assert_eq!(without_indices("plain.path"), "plain.path");
        assert_eq!(without_indices("a.b"), "a.b");
    }
}
