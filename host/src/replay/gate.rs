//! The server's replay gate: before a changed plugin replaces the version
//! serving, its last recorded calls are made again against it, and the swap
//! is refused when more than a set share of them differ or fail.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Report, Selection, Verdict, collect, replay};
use crate::host::Host;
use crate::live::SwapGate;
use crate::plugin::Plugin;
use crate::store::{MAX_PAGE, Store};

/// `[replay_gate]` of `flowhost.toml`: off unless the table is there.
///
/// ```toml
/// [replay_gate]
/// runs = 50          # the last recorded calls of the plugin replayed
/// max_changed = 0.1  # the share of them that may differ or fail
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ReplayGate {
    /// How many of the plugin's last recorded calls are replayed (found in
    /// the newest 1,000 finished runs). Default: 50; 1 to 1,000.
    pub runs: usize,
    /// The share of replayed calls (0 to 1) that may differ or now fail;
    /// past it the swap is refused. A call that failed then and succeeds
    /// now does not count. Default: 0: any difference refuses it.
    pub max_changed: f64,
}

impl Default for ReplayGate {
    fn default() -> Self {
        ReplayGate {
            runs: 50,
            max_changed: 0.0,
        }
    }
}

impl ReplayGate {
    /// Why the settings are unusable, naming the key.
    pub(crate) fn invalid(&self) -> Option<String> {
        if !(1..=MAX_PAGE).contains(&self.runs) {
            return Some(format!(
                "invalid `replay_gate.runs`: it must be 1 to {MAX_PAGE}"
            ));
        }
        if !(0.0..=1.0).contains(&self.max_changed) {
            return Some("invalid `replay_gate.max_changed`: it must be 0 to 1".into());
        }
        None
    }
}

/// The gate a server hands its live plugins registry.
pub(crate) struct Gate {
    pub(crate) host: Host,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: ReplayGate,
}

impl SwapGate for Gate {
    fn check(&self, candidate: Plugin) -> BoxFuture<'static, Result<(), String>> {
        let host = self.host.clone();
        let store = self.store.clone();
        let settings = self.settings.clone();
        Box::pin(async move { vet(&host, store.as_ref(), &settings, &candidate).await })
    }
}

/// Replays the candidate's last recorded calls and decides.
async fn vet(
    host: &Host,
    store: &dyn Store,
    settings: &ReplayGate,
    candidate: &Plugin,
) -> Result<(), String> {
    let name = candidate.name();
    let mut selection = Selection::new(name);
    selection.last_runs = MAX_PAGE;
    selection.max_calls = settings.runs;
    // A gate that cannot look lets nothing through.
    let collected = collect(store, &selection).await.map_err(|e| {
        format!("the replay gate refused it: the recorded runs cannot be read ({e})")
    })?;
    let report = replay(host, candidate, collected).await;
    let summary = &report.summary;
    let changed = summary.different + summary.now_failing;
    let share = match summary.replayed {
        0 => 0.0,
        n => changed as f64 / n as f64,
    };
    if share > settings.max_changed {
        return Err(format!(
            "the replay gate refused it: {changed} of {} recorded calls differ or fail ({:.0}%, more than the {:.0}% allowed); {}",
            summary.replayed,
            share * 100.0,
            settings.max_changed * 100.0,
            first_change(&report)
        ));
    }
    tracing::info!(
        plugin = name,
        "replay gate: the new version passes ({})",
        summary
    );
    Ok(())
}

/// The first call that differs or fails, with what changed.
fn first_change(report: &Report) -> String {
    let Some(call) = report.calls.iter().find(|c| {
        matches!(
            c.verdict,
            Verdict::Different { .. } | Verdict::NowFailing { .. }
        )
    }) else {
        return String::new();
    };
    let what = match &call.verdict {
        Verdict::Different { differences, .. } => differences
            .first()
            .map(|d| format!("different: {d}"))
            .unwrap_or_default(),
        Verdict::NowFailing { error } => format!("now failing: {}: {}", error.kind, error.message),
        _ => String::new(),
    };
    format!("first: {}: {what}", call.site)
}
