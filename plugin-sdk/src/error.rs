//! The error a step returns, mirroring the contract's `step-error`.

use std::fmt;

/// Why a step failed. The host retries [`StepError::Transient`] failures
/// (within the flow's retry policy) and never retries the other two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// Retrying may help: a timeout, an unavailable service, a busy resource.
    Transient(String),
    /// Retrying will not help: a bug, a missing resource, a refused operation.
    Permanent(String),
    /// The input (or the step's config) was not acceptable.
    InvalidInput(String),
}

impl StepError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient(message.into())
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// The input or config was rejected.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) | Self::InvalidInput(m) => m,
        }
    }

    /// The kind as the contract spells it: `transient`, `permanent` or `invalid-input`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
            Self::InvalidInput(_) => "invalid-input",
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for StepError {}

/// JSON that does not fit the expected type is the caller's fault, so `?` on a
/// `serde_json` result gives [`StepError::InvalidInput`].
impl From<serde_json::Error> for StepError {
    fn from(err: serde_json::Error) -> Self {
        Self::InvalidInput(err.to_string())
    }
}
