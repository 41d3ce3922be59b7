//! Comparing a replayed call with its recorded one: same, different (a JSON
//! diff by path), now failing, now succeeding.

use serde::Serialize;
use serde_json::Value;

use crate::executor::ErrorRecord;

/// The most differences listed for one call; past it, the diff says how
/// many more there were.
const MAX_DIFFERENCES: usize = 20;

/// One place where two JSON documents differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Difference {
    /// Its JSON path: `$`, `$.order.lines[2].price`, `$["a key"]`.
    pub path: String,
    /// The value recorded there (absent: there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Value>,
    /// The value the new version gave there (absent: it gave none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            Some(v) => v.to_string(),
            None => "(absent)".to_string(),
        };
        write!(
            f,
            "{}: {} -> {}",
            self.path,
            show(&self.recorded),
            show(&self.replayed)
        )
    }
}

/// How a replayed call compares with its recorded one.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Verdict {
    /// The same output, or a failure of the same kind.
    Same,
    /// Another output (or, failing both times, another error kind).
    Different {
        /// Where they differ, at most 20.
        differences: Vec<Difference>,
        /// Differences not listed.
        #[serde(skip_serializing_if = "is_zero")]
        more: usize,
    },
    /// It succeeded then, and fails now.
    NowFailing {
        /// The new version's error.
        error: ErrorRecord,
    },
    /// It failed then, and succeeds now.
    NowSucceeding {
        /// The recorded error.
        recorded_error: ErrorRecord,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Verdict {
    /// Compares what was recorded with what the new version gave.
    pub(crate) fn of(
        recorded: Result<Value, &ErrorRecord>,
        replayed: Result<Value, ErrorRecord>,
    ) -> Verdict {
        match (recorded, replayed) {
            (Ok(old), Ok(new)) => different(diff(&old, &new)),
            (Ok(_), Err(error)) => Verdict::NowFailing { error },
            (Err(old), Ok(_)) => Verdict::NowSucceeding {
                recorded_error: old.clone(),
            },
            (Err(old), Err(new)) if old.kind == new.kind => Verdict::Same,
            (Err(old), Err(new)) => different(vec![Difference {
                path: "error.kind".into(),
                recorded: Some(Value::String(old.kind.to_string())),
                replayed: Some(Value::String(new.kind.to_string())),
            }]),
        }
    }

    /// The word of a summary: `same`, `different`, `now failing`, `now succeeding`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Different { .. } => "different",
            Verdict::NowFailing { .. } => "now failing",
            Verdict::NowSucceeding { .. } => "now succeeding",
        }
    }
}

fn different(mut differences: Vec<Difference>) -> Verdict {
    if differences.is_empty() {
        return Verdict::Same;
    }
    let more = differences.len().saturating_sub(MAX_DIFFERENCES);
    differences.truncate(MAX_DIFFERENCES);
    Verdict::Different { differences, more }
}

/// Every place where `new` differs from `old`: `old`'s members in its
/// order, then those only `new` has.
pub(crate) fn diff(old: &Value, new: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("$".to_string(), Some(old), Some(new), &mut out);
    out
}

fn walk(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Difference>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in a {
                walk(member(&path, key), Some(value), b.get(key), out);
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk(member(&path, key), None, Some(value), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            path,
            recorded: a.cloned(),
            replayed: b.cloned(),
        }),
    }
}

/// `$.key`, or `$["a key"]` when the key is not a plain name.
fn member(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differences_are_listed_by_path() {
        let old = json!({"a": 1, "b": {"c": [1, 2]}, "gone": true, "x y": 1});
        let new = json!({"a": 1, "b": {"c": [1, 3, 4]}, "added": null, "x y": 2});
        let shown: Vec<String> = diff(&old, &new).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            [
                "$.b.c[1]: 2 -> 3",
                "$.b.c[2]: (absent) -> 4",
                "$.gone: true -> (absent)",
                "$[\"x y\"]: 1 -> 2",
                "$.added: (absent) -> null",
            ]
        );
        assert!(diff(&json!({"a": [1, {"b": 2}]}), &json!({"a": [1, {"b": 2}]})).is_empty());
        assert_eq!(diff(&json!(1), &json!("1"))[0].path, "$");
    }

    #[test]
    fn verdicts() {
        let err = |kind: &str| ErrorRecord {
            kind: kind.parse().unwrap(),
            message: "m".into(),
        };
        assert!(matches!(
            Verdict::of(Ok(json!({"a": 1})), Ok(json!({"a": 1}))),
            Verdict::Same
        ));
        assert!(matches!(
            Verdict::of(Ok(json!({"a": 1})), Err(err("permanent"))),
            Verdict::NowFailing { .. }
        ));
        assert!(matches!(
            Verdict::of(Err(&err("transient")), Ok(json!(1))),
            Verdict::NowSucceeding { .. }
        ));
        assert!(matches!(
            Verdict::of(Err(&err("transient")), Err(err("transient"))),
            Verdict::Same
        ));
        let Verdict::Different { differences, .. } =
            Verdict::of(Err(&err("transient")), Err(err("permanent")))
        else {
            panic!("another error kind is a difference");
        };
        assert_eq!(
            differences[0].to_string(),
            "error.kind: \"transient\" -> \"permanent\""
        );
        let many: Vec<_> = (0..30).collect();
        let Verdict::Different { differences, more } = Verdict::of(Ok(json!(many)), Ok(json!([])))
        else {
            panic!("a difference");
        };
        assert_eq!((differences.len(), more), (20, 10));
    }
}
