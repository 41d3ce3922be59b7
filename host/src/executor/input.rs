//! A run's input, read once where it enters: a request body, an `--input`
//! flag or file, an event's payload.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::data::{Data, Doc};
use super::record::RunError;
use crate::error::ErrorKind;
use crate::flow::{Flow, SchemaId};

/// A run's input: JSON text, checked to be JSON once where it enters, and
/// kept as written. The first step gets these very bytes, and this text is
/// what a record or a store keeps (it serialises as the JSON itself).
///
/// The flow's `input_schema` is checked once too, by [`RunInput::check`]
/// where the input enters (or by the executor, when nobody did); the executor
/// neither re-checks, parses nor serialises it again. Cheap to clone: one
/// event's payload can start several flows.
#[derive(Clone)]
pub struct RunInput {
    doc: Doc,
    /// The schema that accepted it, so a second check (the executor's, of an
    /// input the server already checked) costs nothing.
    checked: Option<SchemaId>,
}

impl RunInput {
    /// JSON text from `origin` (which the error names: `--input`, `the
    /// request body`, a file), checked to be JSON in one scan, not parsed.
    ///
    /// # Errors
    /// [`InputError::NotJson`], with serde's line and column.
    pub fn parse(text: String, origin: &str) -> Result<RunInput, InputError> {
        RawValue::from_string(text)
            .map(RunInput::from_raw)
            .map_err(|e| InputError::NotJson {
                origin: origin.to_string(),
                reason: e.to_string(),
            })
    }

    /// JSON text already checked to be JSON (a step's emitted payload).
    pub fn from_raw(raw: Box<RawValue>) -> RunInput {
        RunInput {
            doc: Data::from_raw(raw),
            checked: None,
        }
    }

    /// A value: its text is written once, when first needed; expressions
    /// read the value as it is.
    pub fn from_value(value: Value) -> RunInput {
        RunInput {
            doc: Data::from_value(value),
            checked: None,
        }
    }

    /// Why expressions cannot read the input, if they cannot: a number
    /// beyond a double, or nesting over 128 levels. Steps still get it as
    /// written. The parse is kept for the run's expressions.
    pub fn unreadable(&self) -> Option<String> {
        self.doc.value().err()
    }

    /// The JSON text, as written.
    pub fn get(&self) -> &str {
        self.doc.text()
    }

    /// Checks the input against the flow's `input_schema`; without one there
    /// is nothing to check. The input is parsed for it once, however many
    /// flows check it, and expressions reuse that parse. Checking again
    /// against the same schema is free: [`Executor::run_input`] checks every
    /// input, so one a caller checked where it entered is checked once.
    ///
    /// [`Executor::run_input`]: crate::Executor::run_input
    ///
    /// # Errors
    /// [`InputError::Schema`] naming each failing field, or
    /// [`InputError::Unreadable`].
    pub fn check(&mut self, flow: &Flow) -> Result<(), InputError> {
        let Some(schema) = &flow.input_schema else {
            return Ok(());
        };
        if self.checked.as_ref().is_some_and(|id| schema.is(id)) {
            return Ok(());
        }
        let value = self
            .doc
            .value()
            .map_err(|reason| InputError::Unreadable { reason })?;
        schema
            .check(value)
            .map_err(|violations| InputError::Schema { violations })?;
        self.checked = Some(schema.id());
        Ok(())
    }

    pub(crate) fn into_doc(self) -> Doc {
        self.doc
    }
}

impl fmt::Debug for RunInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RunInput").field(&self.get()).finish()
    }
}

impl Serialize for RunInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.doc.raw().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RunInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RunInput::from_raw)
    }
}

/// A run's input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The text is not JSON.
    #[error("{origin} is not valid JSON: {reason}")]
    NotJson {
        /// Where the text came from: `--input`, `the request body`, a file.
        origin: String,
        /// What is wrong, with serde's line and column.
        reason: String,
    },
    /// Valid JSON that cannot be read into a value to check: nested over
    /// 128 levels, or with a number beyond a double.
    #[error("the input cannot be checked against the flow's input_schema: {reason}")]
    Unreadable {
        /// Why it cannot be read.
        reason: String,
    },
    /// The input does not match the flow's `input_schema`.
    #[error("the input does not match the flow's input_schema: {violations}")]
    Schema {
        /// Each failing field as `input<json-pointer>: <what is wrong>`
        /// (for example `input/amount: "x" is not of type "number"`),
        /// joined with `; `.
        violations: String,
    },
}

impl InputError {
    /// The failure of a run refused for its input: step `input`, kind
    /// `invalid-input`.
    pub(crate) fn to_run_error(&self) -> RunError {
        RunError::new("input", ErrorKind::InvalidInput, self.to_string())
    }
}
