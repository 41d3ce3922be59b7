//! Typed errors.
//!
//! A failed call is one of four things, and users and metrics tell them apart:
//! the step's own error ([`StepError`]), a trap, a limit hit ([`Limit`]) and a
//! host failure. A run can also fail for reasons of the flow around its calls.
//! [`ErrorKind`] names each in the words the CLI, the API, the run record and
//! the metrics use; [`ErrorClass`] groups them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a step failed, in the step's own words (the WIT `step-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// Retrying may help.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help.
    #[error("{0}")]
    Permanent(String),
    /// The input was not acceptable.
    #[error("{0}")]
    InvalidInput(String),
}

impl StepError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StepError::Transient(_) => ErrorKind::Transient,
            StepError::Permanent(_) => ErrorKind::Permanent,
            StepError::InvalidInput(_) => ErrorKind::InvalidInput,
        }
    }
}

/// A limit the host enforces on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The call used all its fuel.
    Fuel,
    /// The call ran past its deadline.
    Deadline,
    /// The call asked for more linear memory or table space than allowed.
    Memory,
    /// The call returned more output than allowed.
    OutputTooLarge,
}

impl Limit {
    /// The kind of error this limit produces.
    pub fn kind(self) -> ErrorKind {
        match self {
            Limit::Fuel => ErrorKind::Fuel,
            Limit::Deadline => ErrorKind::Deadline,
            Limit::Memory => ErrorKind::Memory,
            Limit::OutputTooLarge => ErrorKind::OutputTooLarge,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The step returned its own error.
    #[error("{kind}: {err}", kind = .0.kind(), err = .0)]
    Step(StepError),
    /// The guest trapped: a panic, `unreachable`, a stack overflow, a bad access.
    #[error("trap: {message}")]
    Trap {
        /// What trapped, with the guest's last stderr lines where it wrote any.
        message: String,
        /// The guest backtrace, where one is available.
        backtrace: Option<String>,
    },
    /// The call hit a limit.
    #[error("{}: {message}", .limit.kind())]
    Limit {
        /// Which limit.
        limit: Limit,
        /// What was exceeded, with figures.
        message: String,
    },
    /// The host failed to run the call (not the guest's fault).
    #[error("host: {0}")]
    Host(String),
}

impl CallError {
    /// The kind of this error, as the CLI, the API and metrics name it:
    /// always a call kind ([`ErrorKind::is_call_kind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::Step(e) => e.kind(),
            CallError::Trap { .. } => ErrorKind::Trap,
            CallError::Limit { limit, .. } => limit.kind(),
            CallError::Host(_) => ErrorKind::Host,
        }
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> String {
        match self {
            CallError::Step(e) => e.to_string(),
            CallError::Trap { message, .. } => message.clone(),
            CallError::Limit { message, .. } => message.clone(),
            CallError::Host(m) => m.clone(),
        }
    }

    pub(crate) fn limit(limit: Limit, message: impl Into<String>) -> Self {
        CallError::Limit {
            limit,
            message: message.into(),
        }
    }
}

/// The kind of a failure, in the fixed words used everywhere: the CLI, the
/// API, the run record, the metrics and the flow files (`retry_on`,
/// `non_retryable`) all print and read these words.
///
/// A call fails with one of the first nine ([`CallError::kind`]); a run can
/// also fail for reasons of the flow around the calls (`circuit-open`,
/// `expression`, `plugin-not-found`, `too-many-steps`, `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The step's own error: retrying may help.
    Transient,
    /// The step's own error: retrying will not help.
    Permanent,
    /// The step's own error: the input was not acceptable. Also a flow
    /// input that fails the flow's `input_schema`.
    InvalidInput,
    /// The guest trapped.
    Trap,
    /// Out of fuel.
    Fuel,
    /// Past the deadline: a call's, a step's or the flow's.
    Deadline,
    /// Over the memory limit.
    Memory,
    /// Output over its size limit.
    OutputTooLarge,
    /// The host failed.
    Host,
    /// The plugin's circuit breaker refused the call.
    CircuitOpen,
    /// An expression failed at run time, or `for_each` was not a list.
    Expression,
    /// The plugin is not in the set the run was given.
    PluginNotFound,
    /// The run would start more steps than its cap allows (`max_steps`).
    TooManySteps,
    /// The run was cancelled.
    Cancelled,
}

/// The five classes of failure, a coarse label next to the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The step's own error ([`StepError`]).
    Guest,
    /// A trap in the guest.
    Trap,
    /// A limit the host enforced.
    Limit,
    /// A failure of the host.
    Host,
    /// A failure of the flow around the calls: a breaker, an expression, a
    /// missing plugin, the step cap, a cancel.
    Flow,
}

impl ErrorClass {
    /// The class's name, for example `limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Guest => "guest",
            ErrorClass::Trap => "trap",
            ErrorClass::Limit => "limit",
            ErrorClass::Host => "host",
            ErrorClass::Flow => "flow",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorKind {
    /// Every kind, in a fixed order: the kinds of a call first.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Transient,
        ErrorKind::Permanent,
        ErrorKind::InvalidInput,
        ErrorKind::Trap,
        ErrorKind::Fuel,
        ErrorKind::Deadline,
        ErrorKind::Memory,
        ErrorKind::OutputTooLarge,
        ErrorKind::Host,
        ErrorKind::CircuitOpen,
        ErrorKind::Expression,
        ErrorKind::PluginNotFound,
        ErrorKind::TooManySteps,
        ErrorKind::Cancelled,
    ];

    /// The kind's name, for example `invalid-input`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Trap => "trap",
            ErrorKind::Fuel => "fuel",
            ErrorKind::Deadline => "deadline",
            ErrorKind::Memory => "memory",
            ErrorKind::OutputTooLarge => "output-too-large",
            ErrorKind::Host => "host",
            ErrorKind::CircuitOpen => "circuit-open",
            ErrorKind::Expression => "expression",
            ErrorKind::PluginNotFound => "plugin-not-found",
            ErrorKind::TooManySteps => "too-many-steps",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Which of the five classes this kind is in.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::Transient | ErrorKind::Permanent | ErrorKind::InvalidInput => {
                ErrorClass::Guest
            }
            ErrorKind::Trap => ErrorClass::Trap,
            ErrorKind::Fuel
            | ErrorKind::Deadline
            | ErrorKind::Memory
            | ErrorKind::OutputTooLarge => ErrorClass::Limit,
            ErrorKind::Host => ErrorClass::Host,
            ErrorKind::CircuitOpen
            | ErrorKind::Expression
            | ErrorKind::PluginNotFound
            | ErrorKind::TooManySteps
            | ErrorKind::Cancelled => ErrorClass::Flow,
        }
    }

    /// Whether a call can fail with this kind ([`CallError::kind`]).
    pub fn is_call_kind(self) -> bool {
        self.class() != ErrorClass::Flow
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, UnknownErrorKind> {
        ErrorKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_string()))
    }
}

/// A word that names no [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error kind `{0}` (expected one of: {all})", all = words(ErrorKind::ALL))]
pub struct UnknownErrorKind(String);

/// Kinds as their words, comma-separated: `transient, permanent, ...`.
pub(crate) fn words(kinds: &[ErrorKind]) -> String {
    let words: Vec<_> = kinds.iter().map(|k| k.as_str()).collect();
    words.join(", ")
}

/// A plugin file could not be loaded. The message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", .path.display())]
#[non_exhaustive]
pub struct LoadError {
    /// The file (or name) that failed to load.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: LoadErrorReason,
}

/// What is wrong with a plugin file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorReason {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the WebAssembly magic bytes.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// The file is a core module, not a component.
    #[error(
        "a core WebAssembly module, not a component: build it for `wasm32-wasip2`, or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The component is malformed or failed to compile.
    #[error("invalid component: {0}")]
    Compile(String),
    /// The component lacks an export of the `step` world.
    #[error("missing export `{0}`: a step exports `describe` and `run` (world flowhost:step/step)")]
    MissingExport(String),
    /// An export has the wrong type.
    #[error("wrong signature: {0}")]
    WrongSignature(String),
    /// The component imports something the host does not provide.
    #[error("unknown import: {0}")]
    UnknownImport(String),
}

/// The host could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the host: {0}")]
pub struct SetupError(pub(crate) String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_their_words_everywhere() {
        for &kind in ErrorKind::ALL {
            let word = kind.as_str();
            assert_eq!(kind.to_string(), word);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{word}\""));
            assert_eq!(word.parse::<ErrorKind>(), Ok(kind));
            let back: ErrorKind = serde_json::from_str(&format!("\"{word}\"")).unwrap();
            assert_eq!(back, kind);
        }
        let e = "oops".parse::<ErrorKind>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown error kind `oops` (expected one of: transient, "),
            "{e}"
        );
    }

    #[test]
    fn a_call_fails_only_with_a_call_kind() {
        let errors = [
            CallError::Step(StepError::InvalidInput("x".into())),
            CallError::Trap {
                message: "x".into(),
                backtrace: None,
            },
            CallError::limit(Limit::OutputTooLarge, "x"),
            CallError::Host("x".into()),
        ];
        let classes: Vec<_> = errors.iter().map(|e| e.kind().class()).collect();
        assert_eq!(
            classes,
            [
                ErrorClass::Guest,
                ErrorClass::Trap,
                ErrorClass::Limit,
                ErrorClass::Host
            ]
        );
        let flow: Vec<_> = ErrorKind::ALL
            .iter()
            .copied()
            .filter(|k| !k.is_call_kind())
            .map(ErrorKind::as_str)
            .collect();
        assert_eq!(
            flow,
            [
                "circuit-open",
                "expression",
                "plugin-not-found",
                "too-many-steps",
                "cancelled"
            ]
        );
    }
}
