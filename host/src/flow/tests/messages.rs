//! Evaluation errors as the flow author reads them: values as CEL literals,
//! cut short, types by their CEL names, operators by their symbols.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{ExecutionError, Value as Cel};
use serde_json::json;

use crate::flow::expr::*;

fn s(text: &str) -> Cel {
    Cel::String(Arc::new(text.to_string()))
}

fn list(items: Vec<Cel>) -> Cel {
    Cel::List(Arc::new(items))
}

/// The message of evaluating `expr` (a bare expression) against `scope`.
fn error_of(expr: &str, scope: serde_json::Value) -> String {
    let t = Template::compile(&json!(format!("${{{expr}}}"))).unwrap();
    t.render(&scope).unwrap_err().to_string()
}

#[test]
fn values_are_written_as_cel_literals() {
    let map: HashMap<Key, Cel> = HashMap::from([
        (Key::from("b"), list(vec![Cel::Bool(true), Cel::Null])),
        (Key::from("a"), Cel::Int(1)),
        (Key::Int(2), Cel::UInt(3)),
    ]);
    let cases = [
        (Cel::Int(-5), "-5"),
        (Cel::UInt(5), "5u"),
        (Cel::Float(2.5), "2.5"),
        (Cel::Float(2.0), "2.0"),
        (Cel::Float(1e300), "1e300"),
        (Cel::Float(f64::NAN), "double('NaN')"),
        (Cel::Float(f64::NEG_INFINITY), "double('-Infinity')"),
        (Cel::Bool(false), "false"),
        (Cel::Null, "null"),
        (s("it's a\\b\n\u{1}é"), r"'it\'s a\\b\n\u0001é'"),
        (Cel::Bytes(Arc::new(b"a'\x00".to_vec())), r"b'a\'\x00'"),
        (
            list(vec![Cel::Int(1), s("x"), list(vec![])]),
            "[1, 'x', []]",
        ),
        (
            Cel::Map(Map { map: Arc::new(map) }),
            "{'a': 1, 'b': [true, null], 2: 3u}",
        ),
    ];
    for (value, want) in cases {
        assert_eq!(literal(&value), want);
    }
}

#[test]
fn long_values_are_cut_short() {
    let long = literal(&s(&"é".repeat(1000)));
    assert_eq!(long.chars().count(), MAX_LITERAL);
    assert_eq!(long, format!("'{}...", "é".repeat(MAX_LITERAL - 4)));
    // A huge list is not written whole before being cut.
    let huge = list((0..1_000_000).map(Cel::Int).collect());
    let shown = literal(&huge);
    assert!(shown.starts_with("[0, 1, 2, 3, "), "{shown}");
    assert!(shown.ends_with("..."), "{shown}");
    assert_eq!(shown.chars().count(), MAX_LITERAL);
}

#[test]
fn mixed_numbers_get_a_conversion_hint() {
    let add = |l, r| describe(&ExecutionError::UnsupportedBinaryOperator("add", l, r));
    assert_eq!(
        add(Cel::Int(5), Cel::Float(2.5)),
        "`+` does not apply to an int and a double (`5 + 2.5`); convert the int with \
         `double(...)` (or the double with `int(...)`, which truncates)"
    );
    assert_eq!(
        add(Cel::UInt(1), Cel::Int(1)),
        "`+` does not apply to a uint and an int (`1u + 1`); convert one with `int(...)` or \
         `uint(...)`"
    );
    assert_eq!(
        add(Cel::Float(0.5), Cel::UInt(1)),
        "`+` does not apply to a double and a uint (`0.5 + 1u`); convert the uint with \
         `double(...)`"
    );
    assert_eq!(
        add(s("n="), Cel::Int(1)),
        "`+` does not apply to a string and an int (`'n=' + 1`); to join them as text, \
         convert the int with `string(...)`"
    );
    assert_eq!(
        describe(&ExecutionError::UnsupportedBinaryOperator(
            "rem",
            Cel::Null,
            Cel::Int(2)
        )),
        "`%` does not apply to null and an int (`null % 2`)"
    );
    // Through an evaluation, with the expression's own text.
    assert_eq!(
        error_of("[1, 2].map(x, x * 1.5)", json!({})),
        "expression `[1, 2].map(x, x * 1.5)`: `*` does not apply to an int and a double \
         (`1 * 1.5`); convert the int with `double(...)` (or the double with `int(...)`, \
         which truncates)"
    );
}

#[test]
fn no_error_shows_the_interpreter_s_own_forms() {
    let scope = json!({"input": {"n": 5, "l": [1, 2], "m": {"a": 1}, "s": "abc"}});
    let cases = [
        ("1 / 0", "division by zero (`1 / 0`)"),
        ("1u % 0u", "modulo by zero (`1u % 0u`)"),
        (
            "9223372036854775807 + 1",
            "`9223372036854775807 + 1` is out of the range of an int (64 bits)",
        ),
        ("input.l[10]", "no item at index 10 (out of range)"),
        ("input.l['x']", "a list cannot be indexed with a string"),
        ("{'a': 1, 'a': 2}", "the map repeats the key 'a'"),
        ("input.n < 'a'", "`<` does not apply to an int and a string"),
        (
            "input.n && true",
            "`&&` does not apply to an int and a bool",
        ),
        ("!input.n", "`!` does not apply to an int"),
        ("input.m.a.b", "an int has no fields to select"),
        ("size(input.n)", "`size` cannot be called with an int"),
        (
            "input.n.startsWith('a')",
            "`startsWith` cannot be called on an int with a string",
        ),
        ("input.n ? 1 : 2", "expected a bool, got an int"),
    ];
    for (expr, want) in cases {
        let got = error_of(expr, scope.clone());
        assert_eq!(got, format!("expression `{expr}`: {want}"));
        for internal in ["Int(", "String(", "List(", "_<_", "_._", "overload"] {
            assert!(!got.contains(internal), "{got}");
        }
    }
    assert_eq!(
        describe(&ExecutionError::ValuesNotComparable(Cel::Int(1), s("a"))),
        "1 (an int) and 'a' (a string) cannot be compared"
    );
    assert_eq!(
        describe(&ExecutionError::UnsupportedKeyType(Cel::Float(1.5))),
        "1.5 (a double) cannot be a map key: keys are strings, ints, uints or bools"
    );
}

#[test]
fn a_step_without_output_says_why() {
    assert_eq!(
        NoOutput::Skipped.message("b"),
        "step `b` was skipped (its `if` was false), so it has no output; \
         `has(steps.b)` tells whether it has one"
    );
    assert_eq!(
        NoOutput::Continued.message("my-b"),
        "step `my-b` failed and was continued (`continue_on_error`), so it has no output; \
         `'my-b' in steps` tells whether it has one"
    );
}
