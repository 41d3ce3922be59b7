//! Key-value state the flow grants the step (`allow: {kv: [NAME]}`), kept
//! by the host's run store: it survives restarts and every server of a
//! fleet sees the same values.
//!
//! ```no_run
//! use flowhost_sdk::kv::Namespace;
//! use std::time::Duration;
//!
//! # fn demo() -> Result<(), flowhost_sdk::StepError> {
//! let counters = Namespace::new("counters");
//! let seen = counters.increment("orders", 1)?;
//! counters.set("last", &seen.to_string(), Some(Duration::from_secs(3600)))?;
//! // Only one run wins the claim.
//! let claimed = counters.compare_and_swap("lock", None, "run-42")?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StepError;

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// The step was not granted the namespace.
    Denied(String),
    /// A key or value over its cap, an empty key, or an increment of a non-integer.
    Invalid(String),
    /// The store could not be reached; retrying may help.
    Unavailable(String),
    /// A value was not the JSON asked for.
    Decode(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, m) = match self {
            KvError::Denied(m) => ("denied", m),
            KvError::Invalid(m) => ("invalid", m),
            KvError::Unavailable(m) => ("unavailable", m),
            KvError::Decode(m) => ("value does not fit", m),
        };
        write!(f, "kv {what}: {m}")
    }
}

impl std::error::Error for KvError {}

/// `unavailable` is `transient`; the rest are `permanent`.
impl From<KvError> for StepError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Unavailable(_) => StepError::transient(e.to_string()),
            _ => StepError::permanent(e.to_string()),
        }
    }
}

/// A namespace, by the name the flow grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// The namespace `name`. Nothing is checked until the first call.
    pub fn new(name: impl Into<String>) -> Self {
        Namespace { name: name.into() }
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        imp::get(&self.name, key)
    }

    /// The value of `key` parsed as JSON into `T`, or `None`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        match self.get(key)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| KvError::Decode(format!("'{key}': {e}"))),
        }
    }

    /// Sets `key`; with `ttl`, it expires that long from now (millisecond precision).
    pub fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), KvError> {
        let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        imp::set(&self.name, key, value, ttl_ms)
    }

    /// Sets `key` to `value` serialised as JSON.
    pub fn set_json(
        &self,
        key: &str,
        value: &impl Serialize,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let text =
            serde_json::to_string(value).map_err(|e| KvError::Decode(format!("'{key}': {e}")))?;
        self.set(key, &text, ttl)
    }

    /// Deletes `key`; true when it was there.
    pub fn delete(&self, key: &str) -> Result<bool, KvError> {
        imp::delete(&self.name, key)
    }

    /// Adds `delta` to the integer at `key` (absent counts as 0), atomically; returns the sum.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        imp::increment(&self.name, key, delta)
    }

    /// Sets `key` to `value` only if it holds `expected` (`None`: only if absent), atomically.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError> {
        imp::compare_and_swap(&self.name, key, expected, value)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::KvError;
    use crate::bindings::flowhost::step::kv as wit;

    fn from_wit(e: wit::Error) -> KvError {
        match e {
            wit::Error::Denied(m) => KvError::Denied(m),
            wit::Error::Invalid(m) => KvError::Invalid(m),
            wit::Error::Unavailable(m) => KvError::Unavailable(m),
        }
    }

    pub(super) fn get(ns: &str, key: &str) -> Result<Option<String>, KvError> {
        wit::get(ns, key).map_err(from_wit)
    }
    pub(super) fn set(
        ns: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> Result<(), KvError> {
        wit::set(ns, key, value, ttl_ms).map_err(from_wit)
    }
    pub(super) fn delete(ns: &str, key: &str) -> Result<bool, KvError> {
        wit::delete(ns, key).map_err(from_wit)
    }
    pub(super) fn increment(ns: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        wit::increment(ns, key, delta).map_err(from_wit)
    }
    pub(super) fn compare_and_swap(
        ns: &str,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError> {
        wit::compare_and_swap(ns, key, expected, value).map_err(from_wit)
    }
}

/// Outside WebAssembly (native unit tests) there is no host: every call is `unavailable`.
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::KvError;

    fn none(ns: &str) -> KvError {
        KvError::Unavailable(format!("namespace '{ns}': no host outside WebAssembly"))
    }
    pub(super) fn get(ns: &str, _: &str) -> Result<Option<String>, KvError> {
        Err(none(ns))
    }
    pub(super) fn set(ns: &str, _: &str, _: &str, _: Option<u64>) -> Result<(), KvError> {
        Err(none(ns))
    }
    pub(super) fn delete(ns: &str, _: &str) -> Result<bool, KvError> {
        Err(none(ns))
    }
    pub(super) fn increment(ns: &str, _: &str, _: i64) -> Result<i64, KvError> {
        Err(none(ns))
    }
    pub(super) fn compare_and_swap(
        ns: &str,
        _: &str,
        _: Option<&str>,
        _: &str,
    ) -> Result<bool, KvError> {
        Err(none(ns))
    }
}
