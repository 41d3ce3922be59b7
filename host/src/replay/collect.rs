//! Collecting a plugin's recorded calls from a store: the newest finished
//! runs, their journals, and each call's context from the flow text the run
//! started with (kept in the store under its hash).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::Grants;
use crate::executor::{ErrorRecord, RunStatus, StepStatus, StepType};
use crate::flow::{Flow, LimitOverrides, StepKind, parse_flow};
use crate::runtime::Context;
use crate::store::{ListQuery, MAX_PAGE, NewRun, StepEntry, Store, StoreError};

/// Which recorded calls to take.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Selection {
    /// The plugin's name (its file stem).
    pub plugin: String,
    /// Look at most at this many finished runs, the newest first.
    pub last_runs: usize,
    /// Stop once this many calls are taken.
    pub max_calls: usize,
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only this step (its id, or its path in the record: `lines[3].price`).
    pub step: Option<String>,
}

impl Selection {
    /// The calls of `plugin` in the last 50 finished runs.
    pub fn new(plugin: impl Into<String>) -> Self {
        Selection {
            plugin: plugin.into(),
            last_runs: 50,
            max_calls: usize::MAX,
            flow: None,
            step: None,
        }
    }
}

/// Where a recorded call comes from.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CallSite {
    /// The run.
    pub run_id: String,
    /// Its flow.
    pub flow: String,
    /// The step's path in the run (`lines[3].price`).
    pub step: String,
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} flow {} step {}",
            self.run_id, self.flow, self.step
        )
    }
}

/// A call recorded in a run's journal, ready to be made again.
#[derive(Debug, Clone)]
pub(crate) struct RecordedCall {
    pub(crate) site: CallSite,
    pub(crate) ctx: Context,
    pub(crate) input: Box<RawValue>,
    /// The step's grants, kept only when it is marked `replay: safe`.
    pub(crate) grants: Grants,
    pub(crate) limits: LimitOverrides,
    pub(crate) timeout: Option<Duration>,
    /// What the call gave then: its output, or its error.
    pub(crate) recorded: Result<Box<RawValue>, ErrorRecord>,
}

/// Why a recorded call is not made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SkipReason {
    /// The step has grants and is not marked `replay: safe`.
    Grants,
    /// Its input was not journaled (over 64 KiB, or an older store).
    NoInput,
    /// The run's flow text is not in the store, or has no such step.
    NoFlow,
    /// It is marked `replay: safe`, but grants a folder by a relative
    /// path, and a store does not say which folder the flow file was in.
    RelativeDir,
}

impl SkipReason {
    /// Whether the call could be replayed at all (else it was skipped by
    /// choice, for its grants).
    pub fn replayable(self) -> bool {
        matches!(self, SkipReason::Grants)
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Grants => {
                "skipped: the step has grants (`allow`); mark it `replay: safe` to replay it with them"
            }
            SkipReason::NoInput => "not replayable: its input was not journaled",
            SkipReason::NoFlow => {
                "not replayable: the run's flow version is not in the store, or lacks the step"
            }
            SkipReason::RelativeDir => {
                "not replayable: it grants a folder by a relative path, which only the flow file's folder resolves"
            }
        })
    }
}

/// A recorded call not made again, and why.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Skipped {
    /// Where it was recorded.
    #[serde(flatten)]
    pub site: CallSite,
    /// Why it is skipped.
    pub reason: SkipReason,
}

/// What a store holds of a plugin's calls.
#[derive(Debug, Default)]
pub struct Collected {
    /// Finished runs looked at.
    pub(crate) runs: usize,
    pub(crate) calls: Vec<RecordedCall>,
    pub(crate) skipped: Vec<Skipped>,
}

impl Collected {
    /// How many calls can be made again.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }
}

/// The recorded calls `selection` names, newest run first.
pub async fn collect(store: &dyn Store, selection: &Selection) -> Result<Collected, StoreError> {
    let mut out = Collected::default();
    let mut flows = Flows::default();
    let mut cursor = None;
    while out.runs < selection.last_runs && out.calls.len() < selection.max_calls {
        let query = ListQuery {
            flow: selection.flow.clone(),
            limit: MAX_PAGE,
            cursor: cursor.take(),
            ..ListQuery::default()
        };
        let page = store.list(query).await?;
        for run in &page.runs {
            if matches!(run.status, RunStatus::Queued | RunStatus::Running) {
                continue;
            }
            out.runs += 1;
            if let Some((new, entries)) = store.replay_source(&run.run_id).await? {
                let flow = flows.get(store, &new).await?;
                for entry in entries {
                    take(&mut out, selection, &new, flow, entry);
                }
            }
            if out.runs >= selection.last_runs || out.calls.len() >= selection.max_calls {
                break;
            }
        }
        match page.next {
            Some(next) if !page.runs.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    out.calls.truncate(selection.max_calls);
    Ok(out)
}

/// Takes `entry` when it is a finished call of the selected plugin.
fn take(
    out: &mut Collected,
    selection: &Selection,
    run: &NewRun,
    flow: Option<&Flow>,
    entry: StepEntry,
) {
    let record = &entry.record;
    let step_id = step_id(&entry.path);
    let called = record.kind == StepType::Plugin
        && record.plugin.as_deref() == Some(selection.plugin.as_str())
        && entry.retry_at.is_none();
    // Only a call that ended: not one refused by its breaker, skipped or cut short.
    let Some(last) = record.attempts.last().filter(|_| called) else {
        return;
    };
    if selection
        .step
        .as_ref()
        .is_some_and(|s| *s != entry.path && s != step_id)
    {
        return;
    }
    let recorded = match (record.status, entry.output, &record.error) {
        (StepStatus::Succeeded, Some(output), _) => Ok(output),
        (StepStatus::Failed | StepStatus::Recovered | StepStatus::Continued, _, Some(e)) => {
            Err(e.clone())
        }
        _ => return,
    };
    let site = CallSite {
        run_id: run.run_id.clone(),
        flow: run.flow.clone(),
        step: entry.path.clone(),
    };
    let found = (|| {
        let input = entry.input.ok_or(SkipReason::NoInput)?;
        let (step, plugin) = flow
            .and_then(|f| {
                f.all_steps()
                    .into_iter()
                    .find(|s| s.id == step_id)
                    .and_then(|s| match &s.kind {
                        StepKind::Plugin(p) => Some((s, p)),
                        _ => None,
                    })
            })
            .ok_or(SkipReason::NoFlow)?;
        let grants = match (plugin.grants == Grants::default(), plugin.replay_safe) {
            (true, _) => Grants::default(),
            (false, false) => return Err(SkipReason::Grants),
            (false, true) if plugin.grants.dirs.iter().any(|d| d.host.is_relative()) => {
                return Err(SkipReason::RelativeDir);
            }
            (false, true) => plugin.grants.clone(),
        };
        Ok((input, step, plugin, grants))
    })();
    let (input, step, plugin, grants) = match found {
        Ok(found) => found,
        Err(reason) => return out.skipped.push(Skipped { site, reason }),
    };
    let config = match &plugin.config {
        serde_json::Value::Null => "{}".to_string(),
        other => other.to_string(),
    };
    out.calls.push(RecordedCall {
        ctx: Context {
            flow: run.flow.clone(),
            run_id: run.run_id.clone(),
            step_id: step.id.clone(),
            attempt: last.attempt,
            config,
            execution_key: format!("{}/{}", run.run_id, entry.path),
        },
        site,
        input,
        grants,
        limits: plugin.limits,
        timeout: step.timeout,
        recorded,
    });
}

/// The step id a path ends with: `price` of `lines[3].price`.
fn step_id(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// The flow versions read so far, parsed once each.
#[derive(Default)]
struct Flows {
    by_hash: HashMap<String, Option<Flow>>,
}

impl Flows {
    /// The flow `run` started with, when the store keeps its text and it parses.
    async fn get(&mut self, store: &dyn Store, run: &NewRun) -> Result<Option<&Flow>, StoreError> {
        if !self.by_hash.contains_key(&run.flow_version) {
            let flow = store.blob(&run.flow_version).await?.and_then(|bytes| {
                let text = String::from_utf8(bytes).ok()?;
                let name = Path::new(&run.flow);
                parse_flow(name, &text, None).ok()
            });
            self.by_hash.insert(run.flow_version.clone(), flow);
        }
        Ok(self.by_hash.get(&run.flow_version).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_ends_with_its_step_id() {
        for (path, id) in [
            ("price", "price"),
            ("enrich.user", "user"),
            ("lines[3].price", "price"),
            ("a[1].b[2].c", "c"),
        ] {
            assert_eq!(super::step_id(path), id);
        }
    }
}
