//! Event-driven flows: an event (from `POST /events/{topic}` or a step's
//! `emit`) starts every flow whose triggers match its topic, through the same
//! queue as any run. Chains are bounded: each run knows its hop count, and a
//! run may emit only so many events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use super::state::{Admission, Refusal, State};
use crate::executor::RunInput;
use crate::printable::{has_control, printable};
use crate::runtime::events::{Event, EventSink};

/// Refuses a topic with control characters (a line break, a terminal
/// escape), from a client and from a step alike.
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    if has_control(topic) {
        return Err(format!(
            "the event topic `{}` has control characters",
            printable(topic)
        ));
    }
    Ok(())
}

/// Starts the flows triggered by `topic`, committed in one transaction.
/// Returns the new run ids. A flow whose `input_schema` the payload fails
/// gets a run that fails at once (step `input`, `invalid-input`), as any
/// run would.
pub(crate) async fn publish(
    state: &Arc<State>,
    topic: &str,
    payload: RunInput,
    hop: u32,
) -> Result<Vec<String>, Refusal> {
    let runs = triggered(state, topic, payload);
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let runs = state.admit(runs, hop).await?;
    Ok(runs.into_iter().map(|(id, _)| id).collect())
}

/// The runs an event on `topic` starts: one for each flow it triggers.
fn triggered(state: &State, topic: &str, payload: RunInput) -> Vec<Admission> {
    let flows: Vec<_> = state
        .flows
        .all()
        .into_values()
        .filter(|f| f.triggered_by(topic))
        .collect();
    if flows.is_empty() {
        tracing::info!(topic = %printable(topic), "event published; no flow is triggered by it");
    }
    flows
        .into_iter()
        .map(|flow| {
            let mut input = payload.clone();
            let refused = input.check(&flow).err();
            Admission {
                flow,
                input,
                refused,
                key: None,
                rerun: None,
            }
        })
        .collect()
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

impl RunEvents {
    /// The checks every event a step emits passes: its topic, the run's
    /// limit on emits, the loop guard. Counts the event.
    fn admissible(&self, state: &State, event: &Event) -> Result<(), String> {
        let topic = printable(&event.topic);
        if let Err(why) = check_topic(&event.topic) {
            tracing::warn!(run = %event.run_id, %topic, "emit refused: {why}");
            return Err(why);
        }
        let limit = state.config.max_emits_per_run;
        if self.emitted.fetch_add(1, Ordering::SeqCst) >= limit {
            tracing::warn!(run = %event.run_id, %topic, "emit refused: per-run limit");
            return Err(format!("this run may emit at most {limit} events"));
        }
        if self.hop >= state.config.max_event_hops {
            tracing::warn!(run = %event.run_id, %topic, hop = self.hop, "emit refused: event loop guard");
            return Err(format!(
                "event loop guard: this run is {} events deep; the limit is {}",
                self.hop, state.config.max_event_hops
            ));
        }
        Ok(())
    }
}

impl EventSink for RunEvents {
    fn emit(&self, event: Event) -> Result<(), String> {
        let Some(state) = self.state.upgrade() else {
            return Err("the server is shutting down".into());
        };
        self.admissible(&state, &event)?;
        let topic = printable(&event.topic);
        // The runtime checked the payload is JSON when it was emitted.
        let payload = RunInput::from_raw(event.payload);
        let runs = triggered(&state, &event.topic, payload);
        if runs.is_empty() {
            return Ok(());
        }
        // The queue places are taken now, so the step hears of a full
        // queue; the commit runs beside the step (the guest call is sync).
        match state.reserve(runs.len()) {
            Ok(()) => {}
            Err(Refusal::QueueFull) => {
                return Err("the run queue is full; the event was not accepted".into());
            }
            Err(_) => return Err("the server is shutting down".into()),
        }
        let hop = self.hop + 1;
        let run_id = event.run_id.clone();
        let topic = topic.into_owned();
        tokio::spawn(async move {
            if let Err(Refusal::Store(e)) = state.commit(runs, hop).await {
                tracing::error!(run = %run_id, %topic, error = %e, "the store could not accept the runs an emitted event starts");
            }
        });
        Ok(())
    }

    fn check(&self, event: &Event) -> Result<(), String> {
        let Some(state) = self.state.upgrade() else {
            return Err("the server is shutting down".into());
        };
        self.admissible(&state, event)
    }

    /// The runs of a journaled step's events: past the queue's capacity
    /// (the step's result that emitted them is committed already), each
    /// with the idempotency key `emit KEY INDEX`, so a replay of the step
    /// starts none twice.
    fn emit_journaled(&self, key: &str, events: Vec<Event>) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut runs = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let payload = RunInput::from_raw(event.payload);
            for mut run in triggered(&state, &event.topic, payload) {
                run.key = Some(format!("emit {key} {i}"));
                runs.push(run);
            }
        }
        if runs.is_empty() {
            return;
        }
        state.queued.fetch_add(runs.len(), Ordering::SeqCst);
        let hop = self.hop + 1;
        let key = key.to_string();
        tokio::spawn(async move {
            if let Err(Refusal::Store(e)) = state.commit(runs, hop).await {
                tracing::error!(step = %key, error = %e, "the store could not accept the runs a journaled step's events start");
            }
        });
    }
}
