//! `/healthz` (alive, runtime not stalled) and `/readyz` (loaded, not
//! saturated, and a probe step runs end to end within its deadline).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::probe::PROBE;
use super::state::State;
use crate::executor::{RunOptions, RunStatus};
use crate::flow::parse_flow;
use crate::registry::PluginSet;

const BEAT: Duration = Duration::from_millis(100);
const STALLED: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for the store to answer.
const STORE_CHECK: Duration = Duration::from_secs(2);

/// A task that notes the time every 100 ms; if it falls behind, the runtime is stalled.
pub(crate) fn start_heartbeat(state: &Arc<State>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BEAT);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            state.heartbeat.store(
                state.started.elapsed().as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    });
}

/// `(healthy, body)`.
pub(crate) fn healthz(state: &State) -> (bool, Value) {
    let lag = state.started.elapsed().as_millis() as u64
        - state
            .heartbeat
            .load(Ordering::Relaxed)
            .min(state.started.elapsed().as_millis() as u64);
    let ok = lag < STALLED.as_millis() as u64;
    let status = if ok { "ok" } else { "unhealthy" };
    (
        ok,
        json!({"status": status, "checks": {"runtime": {"status": status, "heartbeat_lag_ms": lag}}}),
    )
}

/// `(http_ok, body)`: `ok`, `degraded` (serving, with problems) or `unhealthy`.
pub(crate) async fn readyz(state: &State) -> (bool, Value) {
    let plugin_errors = state
        .plugins
        .statuses()
        .await
        .into_iter()
        .filter(|s| s.error.is_some())
        .count();
    let flow_statuses = state.flows.statuses().await;
    let flow_errors = flow_statuses.iter().filter(|s| s.error.is_some()).count();
    let plugins = state.plugins.snapshot().names().len();
    let flows = state.flows.all().len();
    let queued = state.queue_depth();
    let capacity = state.config.queue_capacity;

    let probe = probe(state).await;
    let store = match tokio::time::timeout(STORE_CHECK, state.store.ready()).await {
        Ok(Ok(())) => json!({"status": "ok", "store": state.store.describe()}),
        Ok(Err(e)) => json!({"status": "unhealthy", "error": e.to_string()}),
        Err(_) => json!({"status": "unhealthy", "error": "the store did not answer within 2s"}),
    };
    let loaded = |n: usize, errors: usize| match (n, errors) {
        (0, _) => "unhealthy",
        (_, 0) => "ok",
        _ => "degraded",
    };
    let checks = json!({
        "plugins": {"status": loaded(plugins, plugin_errors), "loaded": plugins, "errors": plugin_errors},
        "flows": {"status": loaded(flows, flow_errors), "loaded": flows, "errors": flow_errors},
        "queue": {"status": if queued < capacity { "ok" } else { "degraded" }, "queued": queued, "capacity": capacity},
        "probe": probe,
        "store": store,
    });
    let statuses: Vec<&str> = checks
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, c)| c["status"].as_str())
        .collect();
    let overall = if statuses.contains(&"unhealthy") {
        "unhealthy"
    } else if statuses.contains(&"degraded") {
        "degraded"
    } else {
        "ok"
    };
    (
        overall != "unhealthy",
        json!({"status": overall, "checks": checks}),
    )
}

/// Runs the built-in probe step through the executor within `probe_timeout`.
async fn probe(state: &State) -> Value {
    let deadline = state.config.probe_timeout;
    let text = format!(
        "flow: readiness-probe\ntimeout: {}ms\nsteps:\n  - id: probe\n    plugin: {PROBE}\n",
        deadline.as_millis().max(1)
    );
    let flow = match parse_flow(std::path::Path::new("readiness-probe.yaml"), &text, None) {
        Ok(f) => f,
        Err(e) => return json!({"status": "unhealthy", "error": format!("{e:?}")}),
    };
    let plugins = PluginSet::new([state.probe.clone()]);
    let input = json!({"probe": true});
    let started = std::time::Instant::now();
    let run = state
        .exec
        .run(&flow, &plugins, input.clone(), RunOptions::default());
    let record = match tokio::time::timeout(deadline.saturating_add(Duration::from_millis(50)), run)
        .await
    {
        Ok(r) => r,
        Err(_) => {
            return json!({"status": "unhealthy", "error": "the probe did not finish within its deadline"});
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match (record.status, record.output_value()) {
        (RunStatus::Succeeded, Some(out)) if out == input => {
            json!({"status": "ok", "duration_ms": ms})
        }
        _ => json!({
            "status": "unhealthy",
            "duration_ms": ms,
            "error": record.error.map(|e| e.to_string()).unwrap_or_else(|| "the probe returned the wrong output".into()),
        }),
    }
}
