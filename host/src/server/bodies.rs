//! The JSON bodies the API answers, as types: the handlers serialise them
//! and `/openapi.json` describes them (`ToSchema`), so the two cannot differ.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::executor::{RunError, RunRecord, RunStatus};
use crate::live::EntryStatus;
use crate::store::DerivedFrom;

/// Every refusal: `{"error": {"kind", "message", "step"}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// A refusal's kind, message and step.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A fixed word: `not-found`, `method-not-allowed`, `bad-request`,
    /// `too-large`, `bad-json`, `invalid-input`, `conflict`, `queue-full`,
    /// `shutting-down`, `unavailable`, `unauthorized`, `forbidden` or `host`.
    #[schema(example = "not-found")]
    pub(crate) kind: &'static str,
    /// What happened, in words.
    pub(crate) message: String,
    /// The step the error is about (`input` for an input the flow's
    /// `input_schema` refused); `null` otherwise.
    pub(crate) step: Option<&'static str>,
}

/// A run that was waited for: `200` from `POST /flows/{flow}/runs`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Finished<'a> {
    /// The run's id.
    pub(crate) run_id: &'a str,
    /// How it ended.
    pub(crate) status: RunStatus,
    /// The flow's output, as the last step wrote it, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) output: Option<&'a RawValue>,
    /// Why it failed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunError>)]
    pub(crate) error: Option<&'a RunError>,
    /// What the request body holds that expressions cannot read.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) warnings: &'a [String],
}

/// A run accepted and not waited for (`202`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Queued<'a> {
    /// The run's id.
    pub(crate) run_id: &'a str,
    /// `queued`.
    pub(crate) status: RunStatus,
    /// What the request body holds that expressions cannot read.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) warnings: &'a [String],
}

/// A rerun accepted (`202`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Rerun {
    /// The new run's id.
    pub(crate) run_id: String,
    /// `queued`.
    pub(crate) status: RunStatus,
    /// The run it reruns, and the step it runs from (`null`: the start).
    pub(crate) derived_from: DerivedFrom,
}

/// A cancel under way (`202`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Cancelling<'a> {
    /// The run's id.
    pub(crate) run_id: &'a str,
    /// Where it was when asked to stop: `queued` or `running`.
    pub(crate) status: RunStatus,
    /// Always `true`.
    pub(crate) cancelling: bool,
}

/// `GET /runs/{id}`: the whole record once the run has finished (or its
/// summary before).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum RunView<'a> {
    /// A finished run.
    Record(&'a RunRecord),
    /// A run still queued or running.
    Brief(RunBrief),
}

/// A run not finished: its id, flow and status, nothing else.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBrief {
    /// The run's id.
    pub(crate) run_id: String,
    /// The flow's name.
    pub(crate) flow: String,
    /// `queued` or `running`.
    pub(crate) status: RunStatus,
}

/// One page of `GET /runs`, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// The runs.
    pub(crate) runs: Vec<RunSummary>,
    /// The `cursor` of the next page; `null` on the last.
    pub(crate) next: Option<String>,
}

/// A run in a list.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunSummary {
    /// The run's id.
    pub(crate) run_id: String,
    /// The flow's name.
    pub(crate) flow: String,
    /// Where the run is.
    pub(crate) status: RunStatus,
    /// When it was accepted (RFC 3339, milliseconds).
    pub(crate) accepted_at: String,
}

/// `GET /flows`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FlowList {
    /// Every flow file, loaded or not.
    pub(crate) flows: Vec<FlowEntry>,
}

/// A flow file: the flow serving, and its load error if any.
#[derive(Serialize, ToSchema)]
pub(crate) struct FlowEntry {
    /// The file stem: the name in `/flows/{flow}/runs`.
    pub(crate) name: String,
    /// The flow's own `flow:` name; `null` when none serves.
    pub(crate) flow: Option<String>,
    /// The file.
    pub(crate) file: String,
    /// The version counter of the version serving.
    pub(crate) version: Option<u64>,
    /// SHA-256 of the serving version's file, in hex.
    pub(crate) hash: Option<String>,
    /// When the serving version was loaded (RFC 3339).
    pub(crate) loaded_at: Option<String>,
    /// Why the file on disk is not serving; `null` when it is.
    pub(crate) error: Option<String>,
    /// Steps in the flow, nested ones included.
    pub(crate) steps: Option<usize>,
    /// The event patterns that start it.
    pub(crate) triggers: Option<Vec<String>>,
    /// Runs of it at once, at most.
    pub(crate) concurrency: Option<u32>,
}

/// `GET /plugins`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PluginList {
    /// Every plugin file, loaded or not.
    pub(crate) plugins: Vec<EntryStatus>,
}

/// An event accepted (`202`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Published<'a> {
    /// The topic.
    pub(crate) topic: &'a str,
    /// The ids of the runs it started, one per triggered flow.
    pub(crate) runs: Vec<String>,
    /// What the request body holds that expressions cannot read.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) warnings: &'a [String],
}

/// `/healthz` and `/readyz`: an overall status and each check's.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, `degraded` (serving, with problems) or `unhealthy`.
    pub(crate) status: HealthStatus,
    /// Each check by name, with its own `status` and figures.
    pub(crate) checks: std::collections::BTreeMap<String, Check>,
}

/// One health check: its status and the figures behind it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Check {
    /// `ok`, `degraded` or `unhealthy`.
    pub(crate) status: HealthStatus,
    /// The figures (`heartbeat_lag_ms`, `loaded`, `queued`, `error`...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub(crate) figures: serde_json::Value,
}

/// A health status word.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    /// Fine.
    Ok,
    /// Serving, with problems.
    Degraded,
    /// Not serving.
    Unhealthy,
}
