//! The finished runs the memory store keeps for `GET /runs/{id}`: bounded by
//! count and by bytes, the oldest forgotten first. A kept record is
//! trimmed: an output over `run_history_max_output` is left out and marked
//! with its size, and long error texts are cut. Sizes are estimated from
//! what a record holds, without serialising it.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Arc;

use crate::executor::{Attempt, ErrorRecord, OutputTrimmed, RunError, RunRecord, StepRecord};

/// Error messages and causes longer than this are cut in kept records.
const MAX_KEPT_TEXT: usize = 4 << 10;

/// How much the history may keep.
pub(crate) struct Bounds {
    /// Records (`run_history`).
    pub(crate) records: usize,
    /// Estimated bytes (`run_history_bytes`).
    pub(crate) bytes: u64,
}

/// The finished runs kept, oldest first, with their estimated sizes.
#[derive(Debug, Default)]
pub(crate) struct History {
    kept: VecDeque<(String, usize)>,
    bytes: usize,
}

impl History {
    /// Adds a finished run of `size` bytes, then forgets the oldest runs
    /// while either bound is passed, the new one included when it alone
    /// passes the byte budget. Returns the runs forgotten.
    pub(crate) fn push(&mut self, run_id: String, size: usize, bounds: &Bounds) -> Vec<String> {
        self.kept.push_back((run_id, size));
        self.bytes += size;
        let mut forgotten = Vec::new();
        while self.kept.len() > bounds.records || self.bytes as u64 > bounds.bytes {
            let Some((old, size)) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= size;
            forgotten.push(old);
        }
        forgotten
    }

    /// Runs kept.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Their estimated size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The copy of `record` to keep: `record` itself when nothing in it is too
/// large, else a copy without its output (marked with its size) and with
/// long error texts cut. The client waiting for the run gets `record`.
pub(crate) fn kept(record: &Arc<RunRecord>, max_output: u64) -> Arc<RunRecord> {
    let output_len = record.output.as_ref().map_or(0, |o| o.get().len());
    let big_output = output_len as u64 > max_output;
    if !big_output && !texts(record).any(|t| t.len() > MAX_KEPT_TEXT) {
        return record.clone();
    }
    let mut kept = RunRecord::clone(record);
    if big_output {
        kept.output = None;
        kept.output_trimmed = Some(OutputTrimmed::new(output_len as u64));
    }
    for_each_text_mut(&mut kept, cut);
    Arc::new(kept)
}

/// About how many bytes of memory `record` holds: its structs, the output
/// and every text in it.
pub(crate) fn size(record: &RunRecord) -> usize {
    let fixed = size_of::<RunRecord>()
        + record.run_id.len()
        + record.flow.len()
        + record.started_at.len()
        + record.output.as_ref().map_or(0, |o| o.get().len())
        + record.error.as_ref().map_or(0, |e| {
            size_of::<RunError>() + e.step.len() + e.causes.len() * size_of::<String>()
        });
    let steps: usize = record
        .steps
        .iter()
        .map(|s| {
            size_of::<StepRecord>()
                + s.path.len()
                + s.plugin.as_ref().map_or(0, String::len)
                + s.version.as_ref().map_or(0, String::len)
                + s.attempts.len() * size_of::<Attempt>()
                + s.attempts
                    .iter()
                    .flat_map(|a| &a.logs)
                    .map(|l| {
                        size_of::<crate::runtime::LogLine>()
                            + l.message.len()
                            + l.level.len()
                            + l.stream.len()
                    })
                    .sum::<usize>()
                + s.fallback.as_ref().map_or(0, |f| {
                    size_of::<Attempt>()
                        + f.plugin.len()
                        + f.version.as_ref().map_or(0, String::len)
                })
        })
        .sum();
    let texts: usize = texts(record).map(String::len).sum();
    fixed + steps + texts
}

/// Every error text of a record: the run's message and causes, and each
/// step's, attempt's and fallback's message.
fn texts(record: &RunRecord) -> impl Iterator<Item = &String> {
    let run = record
        .error
        .iter()
        .flat_map(|e| std::iter::once(&e.message).chain(&e.causes));
    let steps = record.steps.iter().flat_map(|s| {
        let attempts = s.attempts.iter().filter_map(|a| a.error.as_ref());
        let fallback = s.fallback.iter().filter_map(|f| f.attempt.error.as_ref());
        s.error
            .iter()
            .chain(attempts)
            .chain(fallback)
            .map(|e: &ErrorRecord| &e.message)
    });
    run.chain(steps)
}

/// Applies `f` to every text [`texts`] lists.
fn for_each_text_mut(record: &mut RunRecord, f: impl Fn(&mut String)) {
    if let Some(e) = &mut record.error {
        f(&mut e.message);
        e.causes.iter_mut().for_each(&f);
    }
    for s in &mut record.steps {
        let attempts = s.attempts.iter_mut().filter_map(|a| a.error.as_mut());
        let fallback = s
            .fallback
            .iter_mut()
            .filter_map(|fb| fb.attempt.error.as_mut());
        for e in s.error.iter_mut().chain(attempts).chain(fallback) {
            f(&mut e.message);
        }
    }
}

/// Cuts a text over [`MAX_KEPT_TEXT`] bytes (at a character boundary), saying so.
fn cut(text: &mut String) {
    if text.len() <= MAX_KEPT_TEXT {
        return;
    }
    let total = text.len();
    let mut end = MAX_KEPT_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… ({total} bytes in all; cut in the run history)"));
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::error::ErrorKind;
    use crate::executor::RunStatus;

    /// A record with this output and one step failed with this message.
    fn record(output: &str, message: &str) -> RunRecord {
        let mut step = StepRecord::empty();
        step.path = "s".into();
        step.error = Some(ErrorRecord {
            kind: ErrorKind::Permanent,
            message: message.into(),
        });
        RunRecord {
            run_id: "r".into(),
            flow: "f".into(),
            status: RunStatus::Succeeded,
            started_at: String::new(),
            duration_ms: 0.0,
            output: Some(RawValue::from_string(output.into()).unwrap()),
            output_trimmed: None,
            error: None,
            steps: vec![step],
            worker: None,
        }
    }

    #[test]
    fn keeps_small_records_as_they_are_and_trims_large_ones() {
        let small = Arc::new(record("[1]", "oops"));
        assert!(Arc::ptr_eq(&kept(&small, 10), &small), "not copied");

        let output = format!("\"{}\"", "x".repeat(100));
        let big = Arc::new(record(&output, &"m".repeat(4 * MAX_KEPT_TEXT)));
        let k = kept(&big, 10);
        let json = serde_json::to_value(&*k).unwrap();
        assert_eq!(json.get("output"), None, "{json}");
        assert_eq!(json["output_trimmed"], serde_json::json!({"bytes": 102}));
        let message = json["steps"][0]["error"]["message"].as_str().unwrap();
        assert!(message.ends_with("cut in the run history)"), "{message}");
        // The record the waiting client gets is whole.
        assert_eq!(big.output.as_ref().unwrap().get(), output);
        assert!(size(&big) >= size(&k) + 100 + 2 * MAX_KEPT_TEXT);
        assert!(size(&k) > size_of::<RunRecord>() + size_of::<StepRecord>());
    }

    fn bounds(records: usize, bytes: u64) -> Bounds {
        Bounds { records, bytes }
    }

    #[test]
    fn forgets_the_oldest_past_either_bound() {
        let mut h = History::default();
        assert!(h.push("a".into(), 40, &bounds(3, 100)).is_empty());
        assert!(h.push("b".into(), 40, &bounds(3, 100)).is_empty());
        assert_eq!(h.push("c".into(), 40, &bounds(3, 100)), ["a"]);
        assert_eq!((h.len(), h.bytes()), (2, 80));
        assert_eq!(h.push("d".into(), 1, &bounds(2, 100)), ["b"]);
        // A run larger than the whole budget is not kept either.
        assert_eq!(h.push("e".into(), 500, &bounds(3, 100)), ["c", "d", "e"]);
        assert_eq!((h.len(), h.bytes()), (0, 0));
    }

    #[test]
    fn cuts_long_texts_at_a_character_boundary() {
        let mut text = "é".repeat(MAX_KEPT_TEXT);
        cut(&mut text);
        assert!(text.len() < MAX_KEPT_TEXT + 100, "{}", text.len());
        assert!(
            text.ends_with(&format!(
                "… ({} bytes in all; cut in the run history)",
                2 * MAX_KEPT_TEXT
            )),
            "{}",
            &text[text.len() - 80..]
        );
        let mut short = "short".to_string();
        cut(&mut short);
        assert_eq!(short, "short");
    }
}
