//! Flow patterns through the executor: data passing, parallel, switch,
//! for_each, retries, circuit breakers, fallbacks, deadlines, cancellation,
//! on_error, continue_on_error, `if`, step timeouts, the input schema,
//! the cap on steps and durable runs (journal and resume).
//! Each test asserts on the output and on the run record. One module per
//! concern.

use flowhost::RunStatus;
use serde_json::Value;

mod attempt_records;
mod cancel;
mod data;
mod deadlines;
mod documents;
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
