//! Typed errors.
//!
//! A failed call is one of four things, and users and metrics tell them apart:
//! the step's own error ([`StepError`]), a trap, a limit hit ([`Limit`]) and a
//! host failure. [`ErrorKind`] names each in the words the CLI, the API and the
//! metrics use.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a step failed, in the step's own words (the WIT `step-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The kind of this error, as the CLI, the API and metrics name it.
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

/// The kind of a failure, in the fixed words used everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The step's own error: retrying may help.
    Transient,
    /// The step's own error: retrying will not help.
    Permanent,
    /// The step's own error: the input was not acceptable.
    InvalidInput,
    /// The guest trapped.
    Trap,
    /// Out of fuel.
    Fuel,
    /// Past the deadline.
    Deadline,
    /// Over the memory limit.
    Memory,
    /// Output over its size limit.
    OutputTooLarge,
    /// The host failed.
    Host,
}

/// The four classes of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The step's own error.
    Step,
    /// A trap in the guest.
    Trap,
    /// A limit the host enforced.
    Limit,
    /// A failure of the host.
    Host,
}

impl ErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Transient,
        ErrorKind::Permanent,
        ErrorKind::InvalidInput,
        ErrorKind::Trap,
        ErrorKind::Fuel,
        ErrorKind::Deadline,
        ErrorKind::Memory,
        ErrorKind::OutputTooLarge,
        ErrorKind::Host,
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
        }
    }

    /// Which of the four classes this kind is in.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::Transient | ErrorKind::Permanent | ErrorKind::InvalidInput => {
                ErrorClass::Step
            }
            ErrorKind::Trap => ErrorClass::Trap,
            ErrorKind::Fuel
            | ErrorKind::Deadline
            | ErrorKind::Memory
            | ErrorKind::OutputTooLarge => ErrorClass::Limit,
            ErrorKind::Host => ErrorClass::Host,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown error kind `{s}` (expected one of: {})",
                    all.join(", ")
                )
            })
    }
}

/// A plugin file could not be loaded. The message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", .path.display())]
pub struct LoadError {
    /// The file (or name) that failed to load.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: LoadErrorReason,
}

/// What is wrong with a plugin file.
#[derive(Debug, thiserror::Error)]
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
