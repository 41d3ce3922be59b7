//! Checking a case's expectations against its run record: every difference
//! as a JSON path with the expected and the actual value.

use std::fmt;

use serde_json::{Map, Value};

use super::file::Expect;
use crate::executor::{RunRecord, StepRecord};

/// One difference between what a case expected and what its run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where, as a JSON path: `$.output.total`, `$.steps.price.attempts`.
    pub path: String,
    /// What was expected, as JSON or in words.
    pub expected: String,
    /// What the run did, likewise.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.path, self.expected, self.actual
        )
    }
}

const ABSENT: &str = "nothing";

/// Every way `record` differs from `expect`; empty when the case passes.
pub fn check(expect: &Expect, record: &RunRecord) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (key, want) in &expect.exact {
        let path = format!("$.{key}");
        match key.as_str() {
            "steps" => check_steps(want, record, &mut out),
            "output" => diff(&path, want, record.output_value().as_ref(), false, &mut out),
            _ => diff(
                &path,
                want,
                run_field(record, key).as_ref(),
                false,
                &mut out,
            ),
        }
    }
    if let Some(want) = &expect.output_contains {
        let actual = record.output_value();
        diff("$.output", want, actual.as_ref(), true, &mut out);
    }
    if let Some(text) = &expect.message_contains {
        let message = record.error.as_ref().map(|e| e.message.as_str());
        if !message.is_some_and(|m| m.contains(text.as_str())) {
            out.push(Mismatch {
                path: "$.error.message".into(),
                expected: format!("a message containing {}", Value::from(text.as_str())),
                actual: message.map_or(ABSENT.into(), |m| Value::from(m).to_string()),
            });
        }
    }
    let ms = record.duration_ms;
    if let Some(min) = expect.min_duration.filter(|d| ms < d.as_secs_f64() * 1e3) {
        out.push(duration_mismatch("at least", min, ms));
    }
    if let Some(max) = expect.max_duration.filter(|d| ms > d.as_secs_f64() * 1e3) {
        out.push(duration_mismatch("at most", max, ms));
    }
    out
}

fn duration_mismatch(bound: &str, d: std::time::Duration, ms: f64) -> Mismatch {
    Mismatch {
        path: "$.duration".into(),
        expected: format!("{bound} {}", crate::duration::for_people(d)),
        actual: format!("{ms:.0}ms"),
    }
}

/// A top-level field of the run, as the test file names it.
fn run_field(record: &RunRecord, key: &str) -> Option<Value> {
    let error = record.error.as_ref();
    match key {
        "status" => Some(Value::String(record.status.to_string())),
        "failed_step" => error.map(|e| Value::String(e.step.clone())),
        "kind" => error.map(|e| Value::String(e.kind.to_string())),
        _ => None,
    }
}

/// Each expected step against its record, by path or id.
fn check_steps(want: &Value, record: &RunRecord, out: &mut Vec<Mismatch>) {
    let Value::Object(steps) = want else { return };
    for (key, fields) in steps {
        let path = format!("$.steps{}", segment(key));
        match find_step(record, key) {
            Ok(view) => diff(&path, fields, Some(&view), true, out),
            Err(actual) => out.push(Mismatch {
                path,
                expected: fields.to_string(),
                actual,
            }),
        }
    }
}

/// What the test file can expect of the step `key` (a path, an id, or
/// either followed by `.fallback`), or why there is no one such step.
fn find_step(record: &RunRecord, key: &str) -> Result<Value, String> {
    let (name, fallback) = match key.strip_suffix(".fallback") {
        Some(step) => (step, true),
        None => (key, false),
    };
    let by_path: Vec<&StepRecord> = record.steps.iter().filter(|s| s.path == name).collect();
    let found = if by_path.is_empty() {
        let id = |s: &&StepRecord| s.path.rsplit('.').next() == Some(name);
        record.steps.iter().filter(id).collect()
    } else {
        by_path
    };
    let step = match found.as_slice() {
        [one] => *one,
        [] => {
            let all: Vec<&str> = record.steps.iter().map(|s| s.path.as_str()).collect();
            return Err(format!("no step `{name}` ran (steps: {})", all.join(", ")));
        }
        many => {
            let paths: Vec<&str> = many.iter().map(|s| s.path.as_str()).collect();
            return Err(format!(
                "{} steps with id `{name}` ({}): name one by its path",
                many.len(),
                paths.join(", ")
            ));
        }
    };
    if !fallback {
        return Ok(step_view(step));
    }
    let Some(fb) = &step.fallback else {
        return Err(format!("step `{name}` ran no fallback"));
    };
    let mut view = Map::new();
    let status = if fb.attempt.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    view.insert("status".into(), status.into());
    view.insert("attempts".into(), 1.into());
    view.insert("mocked".into(), fb.attempt.mocked.into());
    if let Some(e) = &fb.attempt.error {
        view.insert("kind".into(), e.kind.to_string().into());
    }
    Ok(Value::Object(view))
}

/// A step record as the fields a test file names.
fn step_view(step: &StepRecord) -> Value {
    let mut view = Map::new();
    let status = serde_json::to_value(step.status).unwrap_or(Value::Null);
    view.insert("status".into(), status);
    view.insert("attempts".into(), step.attempts.len().into());
    view.insert("breaker_open".into(), step.breaker_open.into());
    view.insert(
        "mocked".into(),
        step.attempts.iter().any(|a| a.mocked).into(),
    );
    if let Some(e) = &step.error {
        view.insert("kind".into(), e.kind.to_string().into());
    }
    Value::Object(view)
}

/// `.key`, or `["key"]` when the key is not a plain name.
fn segment(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", Value::from(key))
    }
}

/// Differences of `actual` from `want` under `path`. `subset`: objects in
/// `actual` may hold fields `want` does not name.
fn diff(path: &str, want: &Value, actual: Option<&Value>, subset: bool, out: &mut Vec<Mismatch>) {
    let Some(actual) = actual else {
        out.push(Mismatch {
            path: path.into(),
            expected: want.to_string(),
            actual: ABSENT.into(),
        });
        return;
    };
    match (want, actual) {
        (Value::Object(w), Value::Object(a)) => {
            for (k, wv) in w {
                diff(&format!("{path}{}", segment(k)), wv, a.get(k), subset, out);
            }
            if !subset {
                for (k, av) in a.iter().filter(|(k, _)| !w.contains_key(*k)) {
                    out.push(Mismatch {
                        path: format!("{path}{}", segment(k)),
                        expected: ABSENT.into(),
                        actual: av.to_string(),
                    });
                }
            }
        }
        (Value::Array(w), Value::Array(a)) if w.len() == a.len() => {
            for (i, (wv, av)) in w.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), wv, Some(av), subset, out);
            }
        }
        (Value::Array(w), Value::Array(a)) => out.push(Mismatch {
            path: path.into(),
            expected: format!("{} items {want}", w.len()),
            actual: format!("{} items {actual}", a.len()),
        }),
        (Value::Number(w), Value::Number(a)) if w.as_f64() == a.as_f64() => {}
        _ if want == actual => {}
        _ => out.push(Mismatch {
            path: path.into(),
            expected: want.to_string(),
            actual: actual.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diffs(want: Value, actual: Value, subset: bool) -> Vec<String> {
        let mut out = Vec::new();
        diff("$", &want, Some(&actual), subset, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn differences_are_named_by_json_path() {
        let got = diffs(
            json!({"a": {"b": [1, 2]}, "c": "x", "odd key": 1}),
            json!({"a": {"b": [1, 3]}, "d": true, "odd key": 1.0}),
            false,
        );
        assert_eq!(
            got,
            [
                "$.a.b[1]: expected 2, got 3",
                "$.c: expected \"x\", got nothing",
                "$.d: expected nothing, got true",
            ]
        );
    }

    #[test]
    fn a_subset_ignores_fields_it_does_not_name() {
        assert!(diffs(json!({"a": 1}), json!({"a": 1, "b": 2}), true).is_empty());
        assert_eq!(
            diffs(json!({"a": {"b": 1}}), json!({"a": {"b": 2, "c": 3}}), true),
            ["$.a.b: expected 1, got 2"]
        );
    }
}
