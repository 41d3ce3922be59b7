//! Publishing events through the host.

use serde::Serialize;

use crate::StepError;

/// Publishes `payload`, serialised as JSON, on `topic`. In server mode the
/// host starts every flow whose trigger matches the topic.
///
/// A payload that cannot be serialised, or a host that refuses the event,
/// gives [`StepError::Permanent`]; map it yourself if a retry could help.
/// Outside WebAssembly (native unit tests) the event goes to stderr.
pub fn emit(topic: &str, payload: &impl Serialize) -> Result<(), StepError> {
    let payload = serde_json::to_string(payload).map_err(|e| {
        StepError::permanent(format!(
            "event for topic '{topic}' is not serialisable: {e}"
        ))
    })?;
    send(topic, &payload)
        .map_err(|e| StepError::permanent(format!("event for topic '{topic}' refused: {e}")))
}

#[cfg(target_arch = "wasm32")]
fn send(topic: &str, payload: &str) -> Result<(), String> {
    crate::bindings::flowhost::step::host::emit(topic, payload)
}

#[cfg(not(target_arch = "wasm32"))]
fn send(topic: &str, payload: &str) -> Result<(), String> {
    eprintln!("[emit] {topic}: {payload}");
    Ok(())
}
