//! The outbox of a journaled step: the events it emits are checked when
//! emitted but held, journaled with the step's result, and only then handed
//! on to start what they start. A step run again after a crash (its result
//! was not journaled) therefore starts nothing twice, and a replayed step
//! hands its events on again under the same key, which starts nothing twice
//! either.

use std::sync::{Arc, Mutex};

use crate::runtime::events::{Event, EventSink};
use crate::store::Emitted;

/// The events one journaled step emitted so far.
pub(crate) struct Outbox {
    sink: Arc<dyn EventSink>,
    held: Mutex<Vec<Event>>,
}

impl Outbox {
    pub(crate) fn new(sink: Arc<dyn EventSink>) -> Self {
        Outbox {
            sink,
            held: Mutex::default(),
        }
    }

    /// The events held, to journal with the step's result.
    pub(crate) fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for Outbox {
    fn emit(&self, event: Event) -> Result<(), String> {
        self.sink.check(&event)?;
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
        Ok(())
    }
}

impl From<&Event> for Emitted {
    fn from(e: &Event) -> Self {
        Emitted {
            topic: e.topic.clone(),
            payload: e.payload.clone(),
        }
    }
}
