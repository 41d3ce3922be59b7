//! JSON documents passed between steps, kept as text or as a value and
//! converted only when needed: a step output that flows straight into the
//! next step's input is never parsed.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// A JSON document, as text, as a value, or both.
#[derive(Debug)]
pub(crate) struct Data {
    text: OnceLock<String>,
    value: OnceLock<Value>,
}

pub(crate) type Doc = Arc<Data>;

impl Data {
    /// From a step's output text; checked to be JSON.
    pub(crate) fn from_text(text: String) -> Result<Doc, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Arc::new(Data {
            text: OnceLock::from(text),
            value: OnceLock::new(),
        }))
    }

    pub(crate) fn from_value(value: Value) -> Doc {
        Arc::new(Data {
            text: OnceLock::new(),
            value: OnceLock::from(value),
        })
    }

    pub(crate) fn text(&self) -> &str {
        self.text.get_or_init(|| {
            let value = self.value.get().expect("a document has text or a value");
            value.to_string()
        })
    }

    /// The value, without a copy when this is the last reference.
    pub(crate) fn into_value(self: Arc<Self>) -> Value {
        match Arc::try_unwrap(self) {
            Ok(data) => {
                let Data { text, value } = data;
                match (value.into_inner(), text.into_inner()) {
                    (Some(v), _) => v,
                    (None, Some(t)) => {
                        serde_json::from_str(&t).expect("checked to be JSON when made")
                    }
                    (None, None) => Value::Null,
                }
            }
            Err(shared) => shared.value().clone(),
        }
    }

    pub(crate) fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let text = self.text.get().expect("a document has text or a value");
            serde_json::from_str(text).expect("checked to be JSON when made")
        })
    }
}
