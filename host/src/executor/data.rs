//! JSON documents passed between steps, kept as text or as a value and
//! converted only when needed: a step output that flows straight into the
//! next step's input, or out as the flow's output, is never parsed.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON document, as text, as a value, or both.
///
/// Valid JSON text may still not parse into a value: nested deeper than
/// serde_json's limit (128 levels), or with a number beyond a double. Such a
/// document passes through untouched; only reading it fails, with an error.
#[derive(Debug)]
pub(crate) struct Data {
    text: OnceLock<Box<RawValue>>,
    value: OnceLock<Result<Value, String>>,
}

pub(crate) type Doc = Arc<Data>;

impl Data {
    /// From checked JSON text (a step's output).
    pub(crate) fn from_raw(raw: Box<RawValue>) -> Doc {
        Arc::new(Data {
            text: OnceLock::from(raw),
            value: OnceLock::new(),
        })
    }

    pub(crate) fn from_value(value: Value) -> Doc {
        Arc::new(Data {
            text: OnceLock::new(),
            value: OnceLock::from(Ok(value)),
        })
    }

    /// A document made of others (a list or map of step outputs), written
    /// from their text side by side without parsing them.
    pub(crate) fn compose(parts: &impl Serialize) -> Doc {
        Data::from_raw(serde_json::value::to_raw_value(parts).unwrap_or_default())
    }

    pub(crate) fn text(&self) -> &str {
        self.raw().get()
    }

    pub(crate) fn raw(&self) -> &RawValue {
        self.text.get_or_init(|| match self.value.get() {
            Some(Ok(v)) => raw_of(v),
            // A document made from a value always has one.
            _ => raw_of(&Value::Null),
        })
    }

    /// The document as JSON text, without a copy when this is the last reference.
    pub(crate) fn into_raw(self: Arc<Self>) -> Box<RawValue> {
        match Arc::try_unwrap(self) {
            Ok(Data { text, value }) => match (text.into_inner(), value.into_inner()) {
                (Some(raw), _) => raw,
                (None, Some(Ok(v))) => raw_of(&v),
                (None, _) => raw_of(&Value::Null),
            },
            Err(shared) => shared.raw().to_owned(),
        }
    }

    /// The document as a value, parsed on first use.
    pub(crate) fn value(&self) -> Result<&Value, String> {
        self.value
            .get_or_init(|| {
                let text = self.text.get().map_or("null", |t| t.get());
                serde_json::from_str(text).map_err(|e| format!("the JSON cannot be read: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A value as raw JSON; serialising a `Value` cannot fail (its keys are strings).
fn raw_of(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_default()
}
