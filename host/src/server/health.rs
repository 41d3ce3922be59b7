//! `/healthz` (alive, runtime not stalled) and `/readyz` (loaded, not
//! saturated, and a probe step runs end to end within its deadline).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::bodies::{Check, Health, HealthStatus};
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

/// Alive and not stalled: `unhealthy` when the heartbeat falls behind.
pub(crate) fn healthz(state: &State) -> Health {
    let lag = state.started.elapsed().as_millis() as u64
        - state
            .heartbeat
            .load(Ordering::Relaxed)
            .min(state.started.elapsed().as_millis() as u64);
    let status = match lag < STALLED.as_millis() as u64 {
        true => HealthStatus::Ok,
        false => HealthStatus::Unhealthy,
    };
    let runtime = check(status, json!({"heartbeat_lag_ms": lag}));
    Health::of([("runtime", runtime)])
}

/// `ok`, `degraded` (serving, with problems) or `unhealthy`.
pub(crate) async fn readyz(state: &State) -> Health {
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
    use HealthStatus::{Degraded, Ok as Fine, Unhealthy};
    let store = match tokio::time::timeout(STORE_CHECK, state.store.ready()).await {
        Ok(Ok(())) => check(Fine, json!({"store": state.store.describe()})),
        Ok(Err(e)) => check(Unhealthy, json!({"error": e.to_string()})),
        Err(_) => check(
            Unhealthy,
            json!({"error": "the store did not answer within 2s"}),
        ),
    };
    let loaded = |n: usize, errors: usize| {
        let status = match (n, errors) {
            (0, _) => Unhealthy,
            (_, 0) => Fine,
            _ => Degraded,
        };
        check(status, json!({"loaded": n, "errors": errors}))
    };
    let queue = match queued < capacity {
        true => Fine,
        false => Degraded,
    };
    Health::of([
        ("plugins", loaded(plugins, plugin_errors)),
        ("flows", loaded(flows, flow_errors)),
        (
            "queue",
            check(queue, json!({"queued": queued, "capacity": capacity})),
        ),
        ("probe", probe),
        ("store", store),
    ])
}

/// A check: its status and `figures`, a JSON object.
fn check(status: HealthStatus, figures: Value) -> Check {
    Check { status, figures }
}

impl Health {
    /// The checks, and the worst of their statuses overall.
    fn of<const N: usize>(checks: [(&str, Check); N]) -> Health {
        let worst = |a: HealthStatus, b: HealthStatus| match (a, b) {
            (HealthStatus::Unhealthy, _) | (_, HealthStatus::Unhealthy) => HealthStatus::Unhealthy,
            (HealthStatus::Degraded, _) | (_, HealthStatus::Degraded) => HealthStatus::Degraded,
            _ => HealthStatus::Ok,
        };
        let status = checks
            .iter()
            .fold(HealthStatus::Ok, |s, (_, c)| worst(s, c.status));
        let checks = checks
            .into_iter()
            .map(|(k, c)| (k.to_string(), c))
            .collect();
        Health { status, checks }
    }

    /// Whether it answers `200` (else `503`): anything but `unhealthy`.
    pub(crate) fn serving(&self) -> bool {
        self.status != HealthStatus::Unhealthy
    }
}

/// Runs the built-in probe step through the executor within `probe_timeout`.
async fn probe(state: &State) -> Check {
    let deadline = state.config.probe_timeout;
    let text = format!(
        "flow: readiness-probe\ntimeout: {}ms\nsteps:\n  - id: probe\n    plugin: {PROBE}\n",
        deadline.as_millis().max(1)
    );
    let flow = match parse_flow(std::path::Path::new("readiness-probe.yaml"), &text, None) {
        Ok(f) => f,
        Err(e) => return check(HealthStatus::Unhealthy, json!({"error": format!("{e:?}")})),
    };
    let plugins = PluginSet::new([state.probe.clone()]);
    let input = json!({"probe": true});
    let started = std::time::Instant::now();
    let run = state
        .exec
        .run(&flow, &plugins, input.clone(), RunOptions::default());
    let record =
        match tokio::time::timeout(deadline.saturating_add(Duration::from_millis(50)), run).await {
            Ok(r) => r,
            Err(_) => {
                let error = "the probe did not finish within its deadline";
                return check(HealthStatus::Unhealthy, json!({ "error": error }));
            }
        };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match (record.status, record.output_value()) {
        (RunStatus::Succeeded, Some(out)) if out == input => {
            check(HealthStatus::Ok, json!({ "duration_ms": ms }))
        }
        _ => check(
            HealthStatus::Unhealthy,
            json!({
                "duration_ms": ms,
                "error": record.error.map(|e| e.to_string()).unwrap_or_else(|| "the probe returned the wrong output".into()),
            }),
        ),
    }
}
