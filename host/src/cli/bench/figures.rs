//! The figures of a bench: what the finished runs' records add up to.
//!
//! Memory stays bounded however long a bench runs: latencies are kept one per
//! measured run (the bench stops at [`MAX_RUNS`](super::MAX_RUNS)), and each
//! step path keeps a uniform sample of at most [`SAMPLE`] of its executions
//! (a `for_each` of a thousand items runs its steps a thousand times a run).

use std::collections::HashMap;
use std::time::Duration;

use flowhost::executor::{RunRecord, StepRecord, StepStatus, StepType};
use flowhost::{ErrorKind, RunStatus};
use serde::Serialize;

/// The executions of one step path kept for its medians.
const SAMPLE: usize = 10_000;

/// Everything a bench prints, text or JSON.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    /// The flow's name.
    pub(crate) flow: String,
    /// Runs measured (warm-up runs aside): succeeded plus failed.
    pub(crate) runs: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Runs before the measured ones, not counted.
    pub(crate) warmup_runs: u64,
    pub(crate) concurrency: usize,
    /// From the first measured run's start to the last one's end.
    pub(crate) elapsed_s: f64,
    /// Measured runs per second.
    pub(crate) throughput_per_s: f64,
    /// Each run's wall time as the bench saw it, start to record.
    pub(crate) latency_ms: Latency,
    /// Failed runs by the kind of their error, the most frequent first.
    pub(crate) failures: Vec<Failures>,
    /// Per step path, in the order steps first started; `for_each` items
    /// are aggregated under their path without the index (`lines[].price`).
    pub(crate) steps: Vec<StepFigures>,
    /// Stopped early by Ctrl-C.
    pub(crate) interrupted: bool,
    /// Runs in flight at Ctrl-C, cancelled and not counted.
    pub(crate) cancelled_in_flight: u64,
}

/// Run latency percentiles, in milliseconds (0 when no run was measured).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// The failed runs of one error kind.
#[derive(Debug, Serialize)]
pub(crate) struct Failures {
    pub(crate) kind: ErrorKind,
    pub(crate) runs: u64,
    /// The first such failure, as `flowhost run` prints it.
    pub(crate) example: String,
}

/// One step path's figures.
#[derive(Debug, Serialize)]
pub(crate) struct StepFigures {
    /// The step's path, `[]` standing for every `for_each` item.
    pub(crate) path: String,
    pub(crate) kind: StepType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plugin: Option<String>,
    /// Times it ran (once per item inside a `for_each`).
    pub(crate) count: u64,
    /// Times it ended `failed`.
    pub(crate) failed: u64,
    pub(crate) duration_ms_p50: f64,
    /// The fuel of all its attempts, median; plugin steps only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fuel_p50: Option<u64>,
    /// The largest linear memory of its attempts in bytes, median; plugin
    /// steps only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peak_memory_p50: Option<u64>,
}

/// What the finished runs add up to so far.
pub(crate) struct Tally {
    latencies_ms: Vec<f64>,
    succeeded: u64,
    failed: u64,
    failures: Vec<Failures>,
    paths: HashMap<String, usize>,
    steps: Vec<PathTally>,
    rng: fastrand::Rng,
}

/// One step path's executions.
struct PathTally {
    path: String,
    kind: StepType,
    plugin: Option<String>,
    count: u64,
    failed: u64,
    sample: Vec<Sample>,
}

/// One execution of a step.
#[derive(Clone, Copy)]
struct Sample {
    duration_ms: f64,
    fuel: Option<u64>,
    peak_memory: Option<u64>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            latencies_ms: Vec::new(),
            succeeded: 0,
            failed: 0,
            failures: Vec::new(),
            paths: HashMap::new(),
            steps: Vec::new(),
            // Fixed: two benches of the same runs sample alike.
            rng: fastrand::Rng::with_seed(16),
        }
    }

    /// Runs counted so far, and of them failed.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.succeeded + self.failed, self.failed)
    }

    /// Counts a finished run that took `latency`.
    pub(crate) fn add(&mut self, record: &RunRecord, latency: Duration) {
        self.latencies_ms.push(latency.as_secs_f64() * 1e3);
        match (&record.status, &record.error) {
            (RunStatus::Succeeded, _) => self.succeeded += 1,
            (_, error) => {
                self.failed += 1;
                let kind = error.as_ref().map_or(ErrorKind::Host, |e| e.kind);
                match self.failures.iter_mut().find(|f| f.kind == kind) {
                    Some(f) => f.runs += 1,
                    None => self.failures.push(Failures {
                        kind,
                        runs: 1,
                        example: example(record),
                    }),
                }
            }
        }
        for step in &record.steps {
            self.add_step(step);
        }
    }

    fn add_step(&mut self, step: &StepRecord) {
        let path = step.path_without_indices();
        let i = match self.paths.get(&path) {
            Some(&i) => i,
            None => {
                self.paths.insert(path.clone(), self.steps.len());
                self.steps.push(PathTally {
                    path,
                    kind: step.kind,
                    plugin: step.plugin.clone(),
                    count: 0,
                    failed: 0,
                    sample: Vec::new(),
                });
                self.steps.len() - 1
            }
        };
        let tally = &mut self.steps[i];
        tally.count += 1;
        tally.failed += u64::from(step.status == StepStatus::Failed);
        let sample = Sample::of(step);
        // Reservoir sampling: every execution is kept with the same chance.
        if tally.sample.len() < SAMPLE {
            tally.sample.push(sample);
        } else if let Some(slot) = tally.sample.get_mut(self.rng.u64(0..tally.count) as usize) {
            *slot = sample;
        }
    }

    /// The figures, for runs that took `elapsed` from the first start to
    /// the last end.
    pub(crate) fn figures(mut self, head: Head, elapsed: Duration) -> Figures {
        self.latencies_ms.sort_by(f64::total_cmp);
        let l = &self.latencies_ms;
        let runs = self.succeeded + self.failed;
        let secs = elapsed.as_secs_f64();
        self.failures.sort_by_key(|f| std::cmp::Reverse(f.runs));
        Figures {
            flow: head.flow,
            runs,
            succeeded: self.succeeded,
            failed: self.failed,
            warmup_runs: head.warmup_runs,
            concurrency: head.concurrency,
            elapsed_s: secs,
            throughput_per_s: if secs > 0.0 { runs as f64 / secs } else { 0.0 },
            latency_ms: Latency {
                p50: percentile(l, 0.5).unwrap_or_default(),
                p90: percentile(l, 0.9).unwrap_or_default(),
                p99: percentile(l, 0.99).unwrap_or_default(),
                max: l.last().copied().unwrap_or_default(),
            },
            failures: self.failures,
            steps: self.steps.into_iter().map(PathTally::figures).collect(),
            interrupted: head.interrupted,
            cancelled_in_flight: head.cancelled_in_flight,
        }
    }
}

/// What the bench knows besides the records.
pub(crate) struct Head {
    pub(crate) flow: String,
    pub(crate) warmup_runs: u64,
    pub(crate) concurrency: usize,
    pub(crate) interrupted: bool,
    pub(crate) cancelled_in_flight: u64,
}

impl PathTally {
    fn figures(self) -> StepFigures {
        let mut durations: Vec<f64> = self.sample.iter().map(|s| s.duration_ms).collect();
        durations.sort_by(f64::total_cmp);
        let median_of = |pick: fn(&Sample) -> Option<u64>| {
            let mut values: Vec<u64> = self.sample.iter().filter_map(pick).collect();
            values.sort_unstable();
            percentile(&values, 0.5)
        };
        StepFigures {
            fuel_p50: median_of(|s| s.fuel),
            peak_memory_p50: median_of(|s| s.peak_memory),
            duration_ms_p50: percentile(&durations, 0.5).unwrap_or_default(),
            path: self.path,
            kind: self.kind,
            plugin: self.plugin,
            count: self.count,
            failed: self.failed,
        }
    }
}

impl Sample {
    /// A step's wall time; for a plugin step, the fuel of its attempts
    /// (when every one is known) and the largest memory any of them had.
    fn of(step: &StepRecord) -> Self {
        let attempts = &step.attempts;
        let fuel = if attempts.is_empty() {
            None
        } else {
            attempts.iter().map(|a| a.fuel).sum::<Option<u64>>()
        };
        Sample {
            duration_ms: step.duration_ms,
            fuel,
            peak_memory: attempts.iter().filter_map(|a| a.peak_memory).max(),
        }
    }
}

/// The nearest-rank `q` quantile of `sorted`; `None` when it is empty.
fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// A failed run's error as one line.
fn example(record: &RunRecord) -> String {
    match &record.error {
        Some(error) => error.to_string().replace(['\n', '\r'], " "),
        None => format!("the run {}", record.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7u64], 0.9), Some(7));
        assert_eq!(percentile::<u64>(&[], 0.5), None);
    }
}
