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
}
