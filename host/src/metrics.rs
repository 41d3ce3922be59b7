//! Prometheus metrics: runs, steps, retries, breakers, fuel, the queue,
//! instances, the run history, plugin reloads and compile time.
//!
//! Run and step figures are taken from each finished [`RunRecord`], so the
//! executor stays free of metrics code; gauges are set when scraped.

use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{ErrorClass, ErrorKind};
use crate::executor::{BreakerState, RunRecord, RunStatus, StepStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabel {
    flow: String,
}

/// A run's end: its status and, when it failed, the error's kind and class
/// (empty for a success).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    flow: String,
    status: RunStatus,
    kind: Option<ErrorKind>,
    class: Option<ErrorClass>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    flow: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepKindLabel {
    flow: String,
    step: String,
    kind: ErrorKind,
    class: ErrorClass,
}

/// Label values are the same words as the API and the run record.
macro_rules! label_words {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

label_words!(ErrorKind, ErrorClass, RunStatus);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.5, 14))
}

/// The metrics of one host process.
pub(crate) struct Metrics {
    registry: Registry,
    runs_started: Family<FlowLabel, Counter>,
    runs_finished: Family<RunLabel, Counter>,
    run_duration: Family<FlowLabel, Histogram, fn() -> Histogram>,
    step_duration: Family<StepLabel, Histogram, fn() -> Histogram>,
    step_failures: Family<StepKindLabel, Counter>,
    retries: Family<StepLabel, Counter>,
    breaker: Family<PluginLabel, Gauge>,
    fuel: Family<PluginLabel, Counter>,
    queue_depth: Gauge,
    in_flight: Gauge,
    instances: Gauge,
    history_runs: Gauge,
    history_bytes: Gauge,
    reloads: Family<PluginLabel, Counter>,
    load_errors: Family<PluginLabel, Counter>,
    compile: Family<PluginLabel, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every flowhost metric, all at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("flowhost");
        let m = Metrics {
            runs_started: Family::default(),
            runs_finished: Family::default(),
            run_duration: Family::new_with_constructor(seconds),
            step_duration: Family::new_with_constructor(seconds),
            step_failures: Family::default(),
            retries: Family::default(),
            breaker: Family::default(),
            fuel: Family::default(),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            instances: Gauge::default(),
            history_runs: Gauge::default(),
            history_bytes: Gauge::default(),
            reloads: Family::default(),
            load_errors: Family::default(),
            compile: Family::new_with_constructor(seconds),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "runs_started",
            "Runs started, by flow",
            m.runs_started.clone(),
        );
        r.register(
            "runs_finished",
            "Runs finished, by flow, status, error kind and class",
            m.runs_finished.clone(),
        );
        r.register(
            "run_duration_seconds",
            "Run wall time, by flow",
            m.run_duration.clone(),
        );
        r.register(
            "step_duration_seconds",
            "Step wall time, by flow and step",
            m.step_duration.clone(),
        );
        r.register(
            "step_failures",
            "Failed step attempts, by flow, step, error kind and class",
            m.step_failures.clone(),
        );
        r.register(
            "retries",
            "Retried attempts, by flow and step",
            m.retries.clone(),
        );
        r.register(
            "circuit_breaker_state",
            "Circuit breaker state by plugin: 0 closed, 1 half-open, 2 open",
            m.breaker.clone(),
        );
        r.register("fuel_consumed", "Fuel consumed, by plugin", m.fuel.clone());
        r.register(
            "queue_depth",
            "Runs accepted and not started",
            m.queue_depth.clone(),
        );
        r.register(
            "runs_in_flight",
            "Runs started and not finished",
            m.in_flight.clone(),
        );
        r.register(
            "instances_alive",
            "Guest instances alive",
            m.instances.clone(),
        );
        r.register(
            "run_history_runs",
            "Finished runs kept for GET /runs/{id}",
            m.history_runs.clone(),
        );
        r.register(
            "run_history_bytes",
            "Estimated bytes of the finished runs kept (bounded by run_history_bytes)",
            m.history_bytes.clone(),
        );
        r.register(
            "plugin_reloads",
            "Plugin versions loaded, by plugin",
            m.reloads.clone(),
        );
        r.register(
            "plugin_load_errors",
            "Plugin files rejected, by plugin",
            m.load_errors.clone(),
        );
        r.register(
            "compile_seconds",
            "Plugin compile time, by plugin",
            m.compile.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A run was started.
    pub(crate) fn run_started(&self, flow: &str) {
        self.runs_started
            .get_or_create(&FlowLabel { flow: flow.into() })
            .inc();
    }

    /// A run finished (or was cancelled): run, step, retry and fuel figures.
    pub(crate) fn run_finished(&self, record: &RunRecord) {
        let flow = record.flow.clone();
        let kind = record.error.as_ref().map(|e| e.kind);
        self.runs_finished
            .get_or_create(&RunLabel {
                flow: flow.clone(),
                status: record.status,
                kind,
                class: kind.map(ErrorKind::class),
            })
            .inc();
        self.run_duration
            .get_or_create(&FlowLabel { flow: flow.clone() })
            .observe(record.duration_ms / 1e3);
        for step in &record.steps {
            let label = StepLabel {
                flow: flow.clone(),
                step: step.path_without_indices(),
            };
            if step.status != StepStatus::Skipped {
                self.step_duration
                    .get_or_create(&label)
                    .observe(step.duration_ms / 1e3);
            }
            if step.attempts.len() > 1 {
                self.retries
                    .get_or_create(&label)
                    .inc_by(step.attempts.len() as u64 - 1);
            }
            for attempt in &step.attempts {
                if let Some(plugin) = &step.plugin {
                    self.fuel
                        .get_or_create(&PluginLabel {
                            plugin: plugin.clone(),
                        })
                        .inc_by(attempt.fuel.unwrap_or(0));
                }
                // An attempt stopped because its step was cancelled did not fail.
                let failed = attempt.error.as_ref();
                if let Some(e) = failed.filter(|e| e.kind != ErrorKind::Cancelled) {
                    self.step_failures
                        .get_or_create(&StepKindLabel {
                            flow: flow.clone(),
                            step: label.step.clone(),
                            kind: e.kind,
                            class: e.kind.class(),
                        })
                        .inc();
                }
            }
        }
    }

    /// A plugin version was loaded.
    pub(crate) fn plugin_loaded(&self, plugin: &str, compile: Duration) {
        let label = PluginLabel {
            plugin: plugin.into(),
        };
        self.reloads.get_or_create(&label).inc();
        self.compile
            .get_or_create(&label)
            .observe(compile.as_secs_f64());
    }

    /// A plugin file was rejected.
    pub(crate) fn plugin_load_failed(&self, plugin: &str) {
        self.load_errors
            .get_or_create(&PluginLabel {
                plugin: plugin.into(),
            })
            .inc();
    }

    /// Sets the run history gauges: runs kept and their estimated bytes.
    pub(crate) fn set_history(&self, runs: usize, bytes: usize) {
        self.history_runs.set(runs as i64);
        self.history_bytes.set(bytes as i64);
    }

    /// Sets the gauges read at scrape time.
    pub(crate) fn set_gauges(
        &self,
        queued: usize,
        in_flight: usize,
        instances: usize,
        breakers: &[(String, BreakerState)],
    ) {
        self.queue_depth.set(queued as i64);
        self.in_flight.set(in_flight as i64);
        self.instances.set(instances as i64);
        for (plugin, state) in breakers {
            let value = match state {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            self.breaker
                .get_or_create(&PluginLabel {
                    plugin: plugin.clone(),
                })
                .set(value);
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registered_metrics() {
        let m = Metrics::new();
        m.run_started("orders");
        let text = m.encode();
        assert!(
            text.contains("flowhost_runs_started_total{flow=\"orders\"} 1"),
            "{text}"
        );
        assert!(text.contains("flowhost_queue_depth 0"), "{text}");
    }
}
