//! Circuit breakers, one per plugin, shared by every run of an executor.
//!
//! Closed: calls pass and consecutive failures are counted; at
//! `failure_threshold` the breaker opens. Open: calls fail fast with
//! `circuit-open` until `reset_timeout` has passed. Half-open: one probe call
//! passes; its success closes the breaker, its failure opens it again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

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

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Permission to make a call.
pub(crate) enum Permit {
    Call,
    Probe,
    Refused,
}

#[derive(Default)]
pub(crate) struct Breakers {
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    pub(crate) fn acquire(&self, plugin: &str) -> Permit {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states
            .entry(plugin.to_string())
            .or_insert(State::Closed { failures: 0 });
        match state {
            State::Closed { .. } => Permit::Call,
            State::Open { until } if Instant::now() >= *until => {
                *state = State::HalfOpen { probing: true };
                Permit::Probe
            }
            State::Open { .. } | State::HalfOpen { probing: true } => Permit::Refused,
            State::HalfOpen { probing } => {
                *probing = true;
                Permit::Probe
            }
        }
    }

    pub(crate) fn record(&self, plugin: &str, spec: &CircuitBreaker, permit: &Permit, ok: bool) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states
            .entry(plugin.to_string())
            .or_insert(State::Closed { failures: 0 });
        let open = || State::Open {
            until: crate::duration::after(Instant::now(), spec.reset_timeout),
        };
        *state = match (permit, ok, &*state) {
            (_, true, _) => State::Closed { failures: 0 },
            (Permit::Probe, false, _) => open(),
            (_, false, State::Closed { failures }) if failures + 1 >= spec.failure_threshold => {
                open()
            }
            (_, false, State::Closed { failures }) => State::Closed {
                failures: failures + 1,
            },
            (_, false, _) => return,
        };
    }

    /// A probe that never reported (its call was cancelled) frees the half-open slot.
    pub(crate) fn abandon(&self, plugin: &str) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(State::HalfOpen { probing }) = states.get_mut(plugin) {
            *probing = false;
        }
    }

    /// Every plugin's breaker state.
    pub(crate) fn snapshot(&self) -> Vec<(String, BreakerState)> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .map(|(name, s)| {
                let state = match s {
                    State::Closed { .. } => BreakerState::Closed,
                    State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
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

    #[test]
    fn a_reset_timeout_of_any_length_opens_the_breaker_without_overflow() {
        let breakers = Breakers::default();
        let spec = CircuitBreaker {
            failure_threshold: 1,
            reset_timeout: Duration::MAX,
        };
        breakers.record("p", &spec, &Permit::Call, false);
        assert!(matches!(breakers.acquire("p"), Permit::Refused));
        assert_eq!(breakers.snapshot(), [("p".to_string(), BreakerState::Open)]);
    }
}
