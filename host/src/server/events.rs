//! Event-driven flows: an event (from `POST /events/{topic}` or a step's
//! `emit`) starts every flow whose triggers match its topic, through the same
//! queue as any run. Chains are bounded: each run knows its hop count, and a
//! run may emit only so many events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use serde_json::Value;

use super::state::{Refusal, State};
use crate::runtime::events::{Event, EventSink};

/// Starts the flows triggered by `topic`. Returns the new run ids.
pub(crate) fn publish(
    state: &Arc<State>,
    topic: &str,
    payload: Value,
    hop: u32,
) -> Result<Vec<String>, Refusal> {
    let flows: Vec<_> = state
        .flows
        .all()
        .into_values()
        .filter(|f| f.triggered_by(topic))
        .collect();
    if flows.is_empty() {
        tracing::info!(%topic, "event published; no flow is triggered by it");
        return Ok(Vec::new());
    }
    let runs = state.admit(flows, payload, hop)?;
    Ok(runs.into_iter().map(|(id, _)| id).collect())
}

/// The event sink of one run.
pub(crate) struct RunEvents {
    state: Weak<State>,
    hop: u32,
    emitted: AtomicU32,
}

impl RunEvents {
    pub(crate) fn new(state: &Arc<State>, hop: u32) -> Self {
        RunEvents {
            state: Arc::downgrade(state),
            hop,
            emitted: AtomicU32::new(0),
        }
    }
}

impl EventSink for RunEvents {
    fn emit(&self, event: Event) -> Result<(), String> {
        let Some(state) = self.state.upgrade() else {
            return Err("the server is shutting down".into());
        };
        let limit = state.config.max_emits_per_run;
        if self.emitted.fetch_add(1, Ordering::SeqCst) >= limit {
            tracing::warn!(run = %event.run_id, topic = %event.topic, "emit refused: per-run limit");
            return Err(format!("this run may emit at most {limit} events"));
        }
        if self.hop >= state.config.max_event_hops {
            tracing::warn!(run = %event.run_id, topic = %event.topic, hop = self.hop, "emit refused: event loop guard");
            return Err(format!(
                "event loop guard: this run is {} events deep; the limit is {}",
                self.hop, state.config.max_event_hops
            ));
        }
        let payload: Value = serde_json::from_str(&event.payload)
            .map_err(|e| format!("event payload is not valid JSON: {e}"))?;
        match publish(&state, &event.topic, payload, self.hop + 1) {
            Ok(_) => Ok(()),
            Err(Refusal::QueueFull) => {
                Err("the run queue is full; the event was not accepted".into())
            }
            Err(Refusal::ShuttingDown) => Err("the server is shutting down".into()),
        }
    }
}
