//! Circuit breakers: one state per plugin name, shared by every step and
//! every run of an executor. A breaker is about its plugin's health, so
//! every call of a plugin step goes through it, whether or not the step has
//! `circuit_breaker`; the settings that apply are the calling step's.
//!
//! - Closed: calls pass. A success resets the count of failures in a row, a
//!   failure adds one; the breaker opens when that count (across all steps)
//!   reaches the `failure_threshold` of the step whose call just failed. A
//!   step without `circuit_breaker` counts, but never opens it.
//! - Open: calls are refused with `circuit-open` for the `reset_timeout` of
//!   the step that opened it.
//! - Half-open: one probe call passes. Its success closes the breaker; its
//!   failure opens it again for the probing step's `reset_timeout` or, from a
//!   step without `circuit_breaker`, for the last one used.
//!
//! Fallback and `on_error` calls do not go through breakers. Only breakers a
//! step with `circuit_breaker` used are reported; the state of a plugin only
//! steps without settings call is kept only while it has failures in a row.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::flow::CircuitBreaker;

/// A breaker's state, as reported to users and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe call is allowed.
    HalfOpen,
}

/// `reset`: the `reset_timeout` the breaker opened for, which a failed probe
/// of a step without settings opens it for again.
#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, reset: Duration },
    HalfOpen { probing: bool, reset: Duration },
}

impl State {
    fn open(reset: Duration) -> State {
        State::Open {
            until: crate::duration::after_tokio(Instant::now(), reset),
            reset,
        }
    }

    /// The state after a failed call made with `permit` by a step with
    /// settings `spec` (`None`: it has no `circuit_breaker`).
    fn after_failure(&self, permit: &Permit, spec: Option<&CircuitBreaker>) -> Option<State> {
        let reset = spec.map(|s| s.reset_timeout).or(match self {
            State::Closed { .. } => None,
            State::Open { reset, .. } | State::HalfOpen { reset, .. } => Some(*reset),
        });
        match (permit, self, reset) {
            (Permit::Probe, _, Some(reset)) => Some(State::open(reset)),
            (_, State::Closed { failures }, _) => {
                let failures = failures.saturating_add(1);
                Some(match spec {
                    Some(s) if failures >= s.failure_threshold => State::open(s.reset_timeout),
                    _ => State::Closed { failures },
                })
            }
            // A call let through before the breaker opened: it is open already.
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    state: State,
    /// A step with `circuit_breaker` has used it: it is reported.
    reported: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed { failures: 0 },
            reported: false,
        }
    }
}

/// Permission to make a call.
pub(crate) enum Permit {
    Call,
    Probe,
    Refused,
}

#[derive(Default)]
pub(crate) struct Breakers {
    /// A plugin with no entry is closed, with no failures, and not reported.
    states: Mutex<HashMap<String, Breaker>>,
}

impl Breakers {
    /// Asks `plugin`'s breaker to let a call through; `configured`: the
    /// calling step has `circuit_breaker`.
    pub(crate) fn acquire(&self, plugin: &str, configured: bool) -> Permit {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if configured && !states.contains_key(plugin) {
            states.insert(plugin.to_string(), Breaker::default());
        }
        let Some(breaker) = states.get_mut(plugin) else {
            return Permit::Call;
        };
        breaker.reported |= configured;
        let state = &mut breaker.state;
        match state {
            State::Closed { .. } => Permit::Call,
            State::Open { until, reset } if Instant::now() >= *until => {
                *state = State::HalfOpen {
                    probing: true,
                    reset: *reset,
                };
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen { probing: true, .. } => Permit::Refused,
            State::HalfOpen { probing, .. } => {
                *probing = true;
                Permit::Probe
            }
        }
    }

    /// Counts the outcome of a call made with `permit` by a step with
    /// settings `spec` (`None`: it has no `circuit_breaker`).
    pub(crate) fn record(
        &self,
        plugin: &str,
        spec: Option<&CircuitBreaker>,
        permit: &Permit,
        ok: bool,
    ) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            match states.get_mut(plugin) {
                Some(b) if b.reported => b.state = State::Closed { failures: 0 },
                // Closed with no failures is what no entry means.
                Some(_) => drop(states.remove(plugin)),
                None => {}
            }
            return;
        }
        let breaker = states.entry(plugin.to_string()).or_default();
        breaker.reported |= spec.is_some();
        if let Some(next) = breaker.state.after_failure(permit, spec) {
            breaker.state = next;
        }
    }

    /// A probe that never reported (its call was cancelled) frees the half-open slot.
    pub(crate) fn abandon(&self, plugin: &str) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Breaker {
            state: State::HalfOpen { probing, .. },
            ..
        }) = states.get_mut(plugin)
        {
            *probing = false;
        }
    }

    /// The state of every breaker a step with `circuit_breaker` has used.
    pub(crate) fn snapshot(&self) -> Vec<(String, BreakerState)> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .filter(|(_, b)| b.reported)
            .map(|(name, b)| {
                let state = match b.state {
                    State::Closed { .. } => BreakerState::Closed,
                    State::Open { until, .. } if Instant::now() >= until => BreakerState::HalfOpen,
                    State::Open { .. } => BreakerState::Open,
                    State::HalfOpen { .. } => BreakerState::HalfOpen,
                };
                (name.clone(), state)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn settings(failure_threshold: u32, reset_timeout: Duration) -> CircuitBreaker {
        CircuitBreaker {
            failure_threshold,
            reset_timeout,
        }
    }

    /// A call by a step with settings `spec` (`None`: without), and its outcome.
    fn call(b: &Breakers, spec: Option<CircuitBreaker>, ok: bool) -> Permit {
        let permit = b.acquire("p", spec.is_some());
        if !matches!(permit, Permit::Refused) {
            b.record("p", spec.as_ref(), &permit, ok);
        }
        permit
    }

    fn refused(b: &Breakers, configured: bool) -> bool {
        matches!(b.acquire("p", configured), Permit::Refused)
    }

    #[test]
    fn a_reset_timeout_of_any_length_opens_the_breaker_without_overflow() {
        let breakers = Breakers::default();
        call(&breakers, Some(settings(1, Duration::MAX)), false);
        assert!(refused(&breakers, true));
        assert_eq!(breakers.snapshot(), [("p".to_string(), BreakerState::Open)]);
    }

    #[test]
    fn a_step_without_settings_counts_failures_but_never_opens_the_breaker() {
        let breakers = Breakers::default();
        for _ in 0..10 {
            assert!(matches!(call(&breakers, None, false), Permit::Call));
        }
        // Its ten failures count: the eleventh, by a step with a threshold
        // of 11, opens the breaker, for every step.
        call(&breakers, Some(settings(11, HOUR)), false);
        assert!(refused(&breakers, false));
        assert!(refused(&breakers, true));
    }

    #[test]
    fn the_threshold_of_the_step_whose_call_failed_decides() {
        let breakers = Breakers::default();
        let (strict, lenient) = (settings(2, HOUR), settings(3, HOUR));
        call(&breakers, Some(strict), false);
        // Two failures in a row: the strict step's threshold, not the lenient one's.
        call(&breakers, Some(lenient), false);
        assert!(!refused(&breakers, true));
        // Three: past the strict step's threshold, and it is that step that failed.
        call(&breakers, Some(strict), false);
        assert!(refused(&breakers, true));
    }

    #[test]
    fn a_success_by_any_step_resets_the_count() {
        let breakers = Breakers::default();
        let spec = settings(2, HOUR);
        call(&breakers, Some(spec), false);
        call(&breakers, None, true);
        call(&breakers, Some(spec), false);
        assert!(!refused(&breakers, true));
    }

    #[test]
    fn the_breaker_stays_open_for_the_reset_timeout_of_the_step_that_opened_it() {
        let breakers = Breakers::default();
        call(&breakers, Some(settings(1, Duration::ZERO)), false);
        // Open for 0s: the next call, by a step with a longer reset_timeout, probes.
        let probe = breakers.acquire("p", true);
        assert!(matches!(probe, Permit::Probe));
        // The probe fails: open again for the probing step's reset_timeout.
        breakers.record("p", Some(&settings(1, HOUR)), &probe, false);
        assert!(refused(&breakers, true));
        assert!(refused(&breakers, false));
    }

    #[test]
    fn a_failed_probe_without_settings_reopens_for_the_last_reset_timeout() {
        for (reset, after) in [(Duration::ZERO, false), (HOUR, true)] {
            let breakers = Breakers::default();
            breakers.states.lock().unwrap().insert(
                "p".to_string(),
                Breaker {
                    state: State::HalfOpen {
                        probing: false,
                        reset,
                    },
                    reported: true,
                },
            );
            assert!(matches!(call(&breakers, None, false), Permit::Probe));
            assert_eq!(refused(&breakers, false), after, "reset {reset:?}");
        }
    }

    #[test]
    fn only_breakers_a_step_with_settings_used_are_reported() {
        let breakers = Breakers::default();
        call(&breakers, None, false);
        assert!(breakers.snapshot().is_empty());
        // A plugin only steps without settings call is forgotten once it succeeds.
        call(&breakers, None, true);
        assert!(breakers.states.lock().unwrap().is_empty());
        call(&breakers, Some(settings(5, HOUR)), true);
        assert_eq!(
            breakers.snapshot(),
            [("p".to_string(), BreakerState::Closed)]
        );
        call(&breakers, None, true);
        assert_eq!(breakers.states.lock().unwrap().len(), 1);
    }
}
