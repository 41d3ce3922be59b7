//! Values between JSON and CEL, and the words messages use for a value's
//! type.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value as Cel;
use cel::objects::{Key, Map};
use serde_json::Value;

/// JSON to CEL: integers become `int` (or `uint` above `i64`), other numbers
/// `double`.
pub(super) fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(obj) => {
            let map: HashMap<Key, Cel> = obj
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// How heavy a value is to convert and evaluate: one for every value, plus
/// one for every 16 bytes of its strings.
pub(super) fn weight(value: &Value) -> u64 {
    match value {
        Value::String(s) => 1 + s.len() as u64 / 16,
        Value::Array(items) => items.iter().fold(1, |n, v| n.saturating_add(weight(v))),
        Value::Object(obj) => obj.iter().fold(1, |n, (k, v)| {
            n.saturating_add(1 + k.len() as u64 / 16)
                .saturating_add(weight(v))
        }),
        _ => 1,
    }
}

/// CEL to JSON. Fails for values JSON cannot hold.
pub(super) fn to_json(value: &Cel) -> Result<Value, String> {
    Ok(match value {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::from(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("the result {f} is not a finite number"))?,
        Cel::String(s) => Value::String(s.to_string()),
        Cel::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                obj.insert(key, to_json(v)?);
            }
            Value::Object(obj)
        }
        other => {
            return Err(format!(
                "the result is of type `{}`, which has no JSON form",
                other.type_of()
            ));
        }
    })
}

/// What a JSON value is, in words, for "found ..." and "got ..." in messages
/// (the words of JSON: a list, an object).
pub(crate) fn describe_json(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
