//! Logging through the host: lines land in the host's log, tagged with the step.
//!
//! Each level has a function taking a `&str` and a macro taking `format!`
//! arguments; both have the same name, so one `use` brings in both:
//!
//! ```no_run
//! use flowhost_sdk::log::{info, warn};
//!
//! info("starting");
//! warn!("{} items are out of stock", 3);
//! ```
//!
//! The host caps how much a call may log; lines beyond the cap are dropped.
//! Outside WebAssembly (native unit tests) lines go to stderr.

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the step survived.
    Warn,
    /// A failure.
    Error,
}

/// Writes one line to the host's log at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::flowhost::step::host::{self, Level as L};
        let level = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs `message` at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs `message` at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs `message` at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs `message` at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs `message` at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

// The macros are exported at the crate root under hidden names (a
// `macro_rules!` macro can only be exported there) and re-exported here.

#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_trace { ($($arg:tt)+) => { $crate::__flowhost_log!(Trace, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_debug { ($($arg:tt)+) => { $crate::__flowhost_log!(Debug, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_info { ($($arg:tt)+) => { $crate::__flowhost_log!(Info, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_warn { ($($arg:tt)+) => { $crate::__flowhost_log!(Warn, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __flowhost_error { ($($arg:tt)+) => { $crate::__flowhost_log!(Error, $($arg)+) }; }

/// `debug!("x = {x}")`: a formatted line at [`Level::Debug`].
pub use crate::__flowhost_debug as debug;
/// `error!("x = {x}")`: a formatted line at [`Level::Error`].
pub use crate::__flowhost_error as error;
/// `info!("x = {x}")`: a formatted line at [`Level::Info`].
pub use crate::__flowhost_info as info;
/// `trace!("x = {x}")`: a formatted line at [`Level::Trace`].
pub use crate::__flowhost_trace as trace;
/// `warn!("x = {x}")`: a formatted line at [`Level::Warn`].
pub use crate::__flowhost_warn as warn;
