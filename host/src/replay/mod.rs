//! Recorded runs guard a plugin swap: the calls a plugin received in the
//! runs a store keeps are made again against a new version of it, and the
//! outputs compared with the recorded ones.
//!
//! [`collect`] (`collect.rs`) takes a plugin's journaled calls from the
//! newest finished runs, each with its input and its context (the step's
//! config from the flow text the run started with, its execution key);
//! [`replay`] calls the new component with each, with no grants unless the
//! step is marked `replay: safe` (a step with grants is skipped otherwise);
//! `compare.rs` gives each a [`Verdict`]. `flowhost replay` prints the
//! [`Report`]; the server's replay gate (`gate.rs`, [`ReplayGate`]) refuses
//! a plugin swap when too many calls differ or fail.

mod collect;
mod compare;
mod gate;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::executor::ErrorRecord;
use crate::host::Host;
use crate::plugin::Plugin;
use crate::runtime::CallOptions;

pub use collect::{CallSite, Collected, Selection, SkipReason, Skipped, collect};
pub use compare::{Difference, Verdict};
pub(crate) use gate::Gate;
pub use gate::ReplayGate;

/// Calls replayed at once: a replay shares the machine with what serves.
const CONCURRENCY: usize = 4;

/// One recorded call made again.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Replayed {
    /// Where it was recorded.
    #[serde(flatten)]
    pub site: CallSite,
    /// How the new version's answer compares.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The counts of a replay.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Finished runs looked at.
    pub runs: usize,
    /// Calls made again.
    pub replayed: usize,
    /// With the same output (or an error of the same kind).
    pub same: usize,
    /// With another output.
    pub different: usize,
    /// Succeeded then, fail now.
    pub now_failing: usize,
    /// Failed then, succeed now.
    pub now_succeeding: usize,
    /// Not made again: the step has grants and is not `replay: safe`.
    pub skipped: usize,
    /// Not made again: no input journaled, or no flow text to give the context.
    pub not_replayable: usize,
}

impl Summary {
    /// Calls whose answer changed in any way.
    pub fn changed(&self) -> usize {
        self.different + self.now_failing + self.now_succeeding
    }
}

/// `3 calls replayed from 5 runs: 2 same, 1 different, 0 now failing, 0 now
/// succeeding; 1 skipped (grants), 0 not replayable`.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls = if self.replayed == 1 { "call" } else { "calls" };
        let runs = if self.runs == 1 { "run" } else { "runs" };
        write!(
            f,
            "{} {calls} replayed from {} {runs}: {} same, {} different, {} now failing, {} now succeeding; {} skipped (grants), {} not replayable",
            self.replayed,
            self.runs,
            self.same,
            self.different,
            self.now_failing,
            self.now_succeeding,
            self.skipped,
            self.not_replayable
        )
    }
}

/// What replaying a plugin's recorded calls found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The plugin's name.
    pub plugin: String,
    /// The new version's content hash.
    pub version: String,
    /// Each call made again, newest run first.
    pub calls: Vec<Replayed>,
    /// The calls not made again.
    pub skipped: Vec<Skipped>,
    /// The counts.
    pub summary: Summary,
}

/// Calls `plugin` with every call in `collected` and compares its answers
/// with the recorded ones.
pub async fn replay(host: &Host, plugin: &Plugin, collected: Collected) -> Report {
    let calls: Vec<Replayed> = futures::stream::iter(collected.calls)
        .map(|call| replay_one(host, plugin, call))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut summary = Summary {
        runs: collected.runs,
        replayed: calls.len(),
        ..Summary::default()
    };
    for call in &calls {
        *match call.verdict {
            Verdict::Same => &mut summary.same,
            Verdict::Different { .. } => &mut summary.different,
            Verdict::NowFailing { .. } => &mut summary.now_failing,
            Verdict::NowSucceeding { .. } => &mut summary.now_succeeding,
        } += 1;
    }
    for skipped in &collected.skipped {
        *match skipped.reason.replayable() {
            true => &mut summary.skipped,
            false => &mut summary.not_replayable,
        } += 1;
    }
    Report {
        plugin: plugin.name().to_string(),
        version: plugin.hash().to_string(),
        calls,
        skipped: collected.skipped,
        summary,
    }
}

/// Makes one recorded call again, under the step's limits.
async fn replay_one(host: &Host, plugin: &Plugin, call: collect::RecordedCall) -> Replayed {
    let limits = call
        .limits
        .apply(host.config().default_limits(), call.timeout);
    let options = CallOptions {
        limits: Some(limits),
        grants: call.grants,
        events: None,
        // A replay reaches no database or key-value state: it must not change them.
        services: Default::default(),
    };
    let report = host
        .call_with(plugin, &call.ctx, call.input.get(), &options)
        .await;
    let replayed = report
        .result
        .map_err(|e| ErrorRecord {
            kind: e.kind(),
            message: e.message(),
        })
        .and_then(|text| json(&text));
    let recorded = match &call.recorded {
        Ok(raw) => json(raw.get()),
        Err(e) => Err(e.clone()),
    };
    let verdict = match recorded {
        Ok(old) => Verdict::of(Ok(old), replayed),
        Err(e) => Verdict::of(Err(&e), replayed),
    };
    Replayed {
        site: call.site,
        verdict,
    }
}

/// JSON text (checked once already) as a value to compare.
fn json(text: &str) -> Result<Value, ErrorRecord> {
    serde_json::from_str(text).map_err(|e| ErrorRecord {
        kind: crate::ErrorKind::Host,
        message: format!("the output cannot be compared: {e}"),
    })
}
