//! Evaluation errors in the flow author's terms: values written as CEL
//! literals (`5`, `2.5`, `'text'`, `[1, 2]`), types by their CEL names, and
//! operators by their symbols, never the interpreter's own forms
//! (`Int(5)`, `_<_`). Also why a step an expression reads has no output.

use std::fmt::Write;

use cel::objects::Key;
use cel::{ExecutionError, Value as Cel};

/// The longest a value is shown in a message, in characters; a longer one is
/// cut and ends with `...`.
pub(crate) const MAX_LITERAL: usize = 80;

/// Why a step an expression reads has no output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoOutput {
    /// Its `if` was false.
    Skipped,
    /// It failed under `continue_on_error`.
    Continued,
    /// It failed, or the run ended before it finished (as `on_error` sees it).
    Unfinished,
}

impl NoOutput {
    /// The message for reading step `id`'s output.
    pub(crate) fn message(self, id: &str) -> String {
        let why = match self {
            NoOutput::Skipped => format!("step `{id}` was skipped (its `if` was false)"),
            NoOutput::Continued => {
                format!("step `{id}` failed and was continued (`continue_on_error`)")
            }
            NoOutput::Unfinished => {
                format!("step `{id}` did not finish (it failed, or the run stopped before it)")
            }
        };
        let test = if is_ident(id) {
            format!("has(steps.{id})")
        } else {
            format!("'{id}' in steps")
        };
        format!("{why}, so it has no output; `{test}` tells whether it has one")
    }
}

/// The message for an evaluation error.
pub(crate) fn describe(error: &ExecutionError) -> String {
    use ExecutionError as E;
    match error {
        E::UnsupportedBinaryOperator(op, l, r) => binary(op, l, r),
        E::Overflow(op, l, r) => format!(
            "`{} {} {}` is out of the range of {} (64 bits)",
            literal(l),
            symbol(op),
            literal(r),
            kind(l)
        ),
        E::DivisionByZero(v) => format!("division by zero (`{} / {}`)", literal(v), zero(v)),
        E::RemainderByZero(v) => format!("modulo by zero (`{} % {}`)", literal(v), zero(v)),
        E::IndexOutOfBounds(i) => format!("no item at index {} (out of range)", literal(i)),
        E::UnsupportedIndex(i, target) => format!(
            "{} cannot be indexed with {} ({})",
            kind(target),
            literal(i),
            kind(i)
        ),
        E::DuplicateKey(k) => format!("the map repeats the key {}", literal(k)),
        E::ValuesNotComparable(a, b) => format!(
            "{} ({}) and {} ({}) cannot be compared",
            literal(a),
            kind(a),
            literal(b),
            kind(b)
        ),
        E::UnsupportedKeyType(k) => format!(
            "{} ({}) cannot be a map key: keys are strings, ints, uints or bools",
            literal(k),
            kind(k)
        ),
        E::UnsupportedTargetType { target } => {
            format!("invalid argument: {} ({})", literal(target), kind(target))
        }
        E::NotSupportedAsMethod { method, target } => {
            format!("`{method}` is not a method of {}", kind(target))
        }
        E::UnexpectedType { got, want } => {
            format!("expected {}, got {}", article(want), article(got))
        }
        E::NoSuchOverload(o) => overload(o.function(), o.argument_types(), o.is_member_function())
            .unwrap_or_else(|| o.to_string()),
        E::InternalError(m) => format!("internal error: {m}"),
        other => other.to_string(),
    }
}

/// An operator applied to values it does not take, with a hint where a
/// conversion would do.
fn binary(op: &str, l: &Cel, r: &Cel) -> String {
    let sym = symbol(op);
    let mut out = format!(
        "`{sym}` does not apply to {} and {} (`{} {sym} {}`)",
        kind(l),
        kind(r),
        literal(l),
        literal(r)
    );
    let numeric = |v: &Cel| matches!(v, Cel::Int(_) | Cel::UInt(_) | Cel::Float(_));
    let hint = match (l, r) {
        (Cel::Int(_), Cel::Float(_)) | (Cel::Float(_), Cel::Int(_)) => Some(
            "convert the int with `double(...)` (or the double with `int(...)`, which truncates)"
                .to_string(),
        ),
        (Cel::UInt(_), Cel::Float(_)) | (Cel::Float(_), Cel::UInt(_)) => {
            Some("convert the uint with `double(...)`".to_string())
        }
        (Cel::Int(_), Cel::UInt(_)) | (Cel::UInt(_), Cel::Int(_)) => {
            Some("convert one with `int(...)` or `uint(...)`".to_string())
        }
        (Cel::String(_), v) | (v, Cel::String(_)) if op == "add" && numeric(v) => Some(format!(
            "to join them as text, convert the {} with `string(...)`",
            type_name(v)
        )),
        _ => None,
    };
    if let Some(hint) = hint {
        out.push_str("; ");
        out.push_str(&hint);
    }
    out
}

/// The symbol of an operator the interpreter names by a word.
fn symbol(op: &str) -> &str {
    match op {
        "add" => "+",
        "sub" => "-",
        "mul" => "*",
        "div" => "/",
        "rem" => "%",
        other => other,
    }
}

/// A call that no overload takes, in the words of its source: an operator
/// by its symbol, a function by its name. `None` for a name not known here.
fn overload(function: &str, types: &[String], member: bool) -> Option<String> {
    let list = |types: &[String]| {
        let words: Vec<String> = types.iter().map(|t| article(t)).collect();
        words.join(" and ")
    };
    let operator = match function {
        "_[_]" | "_[?_]" => {
            let [target, index] = types else { return None };
            return Some(format!(
                "{} cannot be indexed with {}",
                article(target),
                article(index)
            ));
        }
        "_._" => {
            let target = types.first()?;
            return Some(format!("{} has no fields to select", article(target)));
        }
        "!_" => "!",
        "-_" => "-",
        "_?_:_" => "? :",
        "@in" => "in",
        f if f.len() > 2 && f.starts_with('_') && f.ends_with('_') => &f[1..f.len() - 1],
        f if f.starts_with(['_', '@']) => return None,
        // A function by its name.
        f if member => {
            let (receiver, args) = types.split_first()?;
            let with = if args.is_empty() {
                String::new()
            } else {
                format!(" with {}", list(args))
            };
            return Some(format!(
                "`{f}` cannot be called on {}{with}",
                article(receiver)
            ));
        }
        f => return Some(format!("`{f}` cannot be called with {}", list(types))),
    };
    Some(format!("`{operator}` does not apply to {}", list(types)))
}

/// A CEL type name with its article: `an int`, `a list`; `null`.
fn article(name: &str) -> String {
    match name {
        "null_type" | "null" => "null".to_string(),
        "bytes" => "bytes".to_string(),
        n if n.starts_with(['a', 'e', 'i', 'o', 'u']) && n != "uint" => format!("an {n}"),
        n => format!("a {n}"),
    }
}

/// A value's CEL type, with its article.
fn kind(value: &Cel) -> String {
    article(&type_name(value))
}

/// A value's CEL type.
fn type_name(value: &Cel) -> String {
    match value {
        Cel::Int(_) => "int",
        Cel::UInt(_) => "uint",
        Cel::Float(_) => "double",
        Cel::String(_) => "string",
        Cel::Bytes(_) => "bytes",
        Cel::Bool(_) => "bool",
        Cel::List(_) => "list",
        Cel::Map(_) => "map",
        Cel::Null => "null",
        other => return other.type_of().to_string(),
    }
    .to_string()
}

/// The zero a value of this type was divided by.
fn zero(value: &Cel) -> &'static str {
    match value {
        Cel::UInt(_) => "0u",
        _ => "0",
    }
}

/// A value as CEL source writes it, at most [`MAX_LITERAL`] characters.
pub(crate) fn literal(value: &Cel) -> String {
    let mut out = String::new();
    write_literal(&mut out, value);
    if out.chars().count() <= MAX_LITERAL {
        return out;
    }
    let cut = out
        .char_indices()
        .nth(MAX_LITERAL - 3)
        .map_or(out.len(), |(i, _)| i);
    out.truncate(cut);
    out.push_str("...");
    out
}

/// Writes `value`, stopping once `out` is longer than a message shows: a
/// huge value costs no more than a small one.
fn write_literal(out: &mut String, value: &Cel) {
    if out.len() > MAX_LITERAL * 4 {
        return;
    }
    match value {
        Cel::Null => out.push_str("null"),
        Cel::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Cel::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Cel::UInt(u) => {
            let _ = write!(out, "{u}u");
        }
        Cel::Float(f) if f.is_nan() => out.push_str("double('NaN')"),
        Cel::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 {
                "double('Infinity')"
            } else {
                "double('-Infinity')"
            });
        }
        // Debug always writes a `.` or an exponent: `2.0`, `1e300`.
        Cel::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Cel::String(s) => write_string(out, s),
        Cel::Bytes(b) => {
            out.push_str("b'");
            for &byte in b.iter().take(MAX_LITERAL * 4) {
                match byte {
                    b'\'' | b'\\' => {
                        out.push('\\');
                        out.push(byte as char);
                    }
                    0x20..=0x7e => out.push(byte as char),
                    _ => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
            }
            out.push('\'');
        }
        Cel::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if out.len() > MAX_LITERAL * 4 {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, item);
            }
            out.push(']');
        }
        Cel::Map(map) => {
            // Keys in order when there are few, so a message is the same
            // every time; a big map is cut anyway.
            let mut entries: Vec<(&Key, &Cel)> = map.map.iter().take(64).collect();
            if map.map.len() <= 64 {
                entries.sort_by_key(|(k, _)| key_literal(k));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if out.len() > MAX_LITERAL * 4 {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&key_literal(k));
                out.push_str(": ");
                write_literal(out, v);
            }
            out.push('}');
        }
        other => out.push_str(&kind(other)),
    }
}

fn key_literal(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => format!("{u}u"),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => {
            let mut out = String::new();
            write_string(&mut out, s);
            out
        }
    }
}

/// A string in single quotes, with quotes, backslashes and control
/// characters escaped.
fn write_string(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars().take(MAX_LITERAL * 4) {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// Whether `id` can be written as a field, `steps.<id>`.
pub(crate) fn is_ident(id: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&id)
}
