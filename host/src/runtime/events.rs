//! Events a step publishes with the host's `emit`.

use serde_json::value::RawValue;

/// An event published by a step.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Event {
    /// The topic, for example `order.created`.
    pub topic: String,
    /// The payload, a JSON document, checked to be JSON when it was emitted.
    pub payload: Box<RawValue>,
    /// The flow of the step that emitted it ("" when called directly).
    pub flow: String,
    /// The run of the step that emitted it.
    pub run_id: String,
    /// The step that emitted it.
    pub step_id: String,
}

/// Receives the events steps emit (the server's event bus, in server mode).
///
/// `emit` must not block: queue the event or refuse it. An `Err` is returned
/// to the guest as the error of its `emit` call.
pub trait EventSink: Send + Sync {
    /// Accepts or refuses one event.
    fn emit(&self, event: Event) -> Result<(), String>;

    /// Checks an event a journaled step emits, which is held until the
    /// step's result is journaled ([`EventSink::emit_journaled`]); an `Err`
    /// refuses it, as from `emit`. Default: accepted.
    fn check(&self, _event: &Event) -> Result<(), String> {
        Ok(())
    }

    /// Hands on the events of a step whose result is now journaled. `key`
    /// names the step's execution (its run id and path); with each event's
    /// index it identifies the event, so that a call again with the same
    /// key (a resumed run replaying the step) starts nothing twice.
    /// Default: [`EventSink::emit`] each.
    fn emit_journaled(&self, _key: &str, events: Vec<Event>) {
        for event in events {
            let _ = self.emit(event);
        }
    }
}
