//! Flow patterns through the executor: data passing, parallel, switch,
//! for_each, retries, circuit breakers, fallbacks, deadlines, cancellation,
//! on_error, continue_on_error, `if`, step timeouts, the input schema,
//! the cap on steps, what failing expressions say, and durable runs
//! (journal and resume).
//! Each test asserts on the output and on the run record. One module per
//! concern.

use std::sync::Mutex;
use std::time::Duration;

use flowhost::{Event, EventSink, RunOptions, RunRecord, RunStatus};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{executor, parse, plugin_set};

mod attempt_records;
mod cancel;
mod data;
mod deadlines;
mod documents;
mod expr_messages;
mod journal;
mod on_error;
mod patterns;
mod recovery;
mod step_cap;

/// The output of a run that must have succeeded.
fn output(record: &flowhost::RunRecord) -> Value {
    assert_eq!(
        record.status,
        RunStatus::Succeeded,
        "the run failed: {:?}",
        record.error
    );
    record
        .output_value()
        .expect("a succeeded run has an output")
}

/// An event sink that keeps what steps emit: the `emit` plugin publishes its
/// input, tagged with the flow, the run and the step id its call saw.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventSink for Events {
    fn emit(&self, event: Event) -> Result<(), String> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

/// Runs `yaml` on `{}`, cancelling it after `after`.
async fn cancelled_after(yaml: &str, after: Duration) -> RunRecord {
    let flow = parse(yaml);
    let plugins = plugin_set(&flow).await;
    let cancel = CancellationToken::new();
    let options = RunOptions {
        cancel: Some(cancel.clone()),
        ..RunOptions::default()
    };
    let trigger = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        cancel.cancel();
    });
    let record = executor().run(&flow, &plugins, json!({}), options).await;
    trigger.await.unwrap();
    record
}
