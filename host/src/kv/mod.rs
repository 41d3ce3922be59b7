//! Key-value state for steps, in namespaces granted per step
//! (`allow: {kv: [NAME]}`), kept by a [`KvStore`].
//!
//! Backends: the run store's by default, so state survives restarts and a
//! fleet shares it (the SQLite store's `kv` table on its own connection, the
//! PostgreSQL store's `kv` table); [`MemoryKv`] for the memory store, for
//! `flowhost run` without `--store` and for `flowhost test` (nothing persists).
//!
//! Every operation is atomic. An entry past its expiry is invisible at once
//! (absent to `get`, `increment` and `compare_and_swap`) and deleted lazily:
//! when an operation meets it, and by a bounded sweep when the store prunes.
//! `set` replaces a key's expiry; `increment` and `compare_and_swap` keep the
//! expiry of the live key they change, and a key they create has none.
//!
//! The caps ([`MAX_KEY`], [`MAX_VALUE`], [`MAX_TTL`]) are checked where the
//! guest calls ([`guest`]); namespace names ([`check_namespace`]) where flow
//! files are loaded.

mod guest;
mod memory;

use std::time::Duration;

pub use memory::MemoryKv;

/// The longest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// The largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;
/// The longest namespace name, in bytes.
pub const MAX_NAMESPACE: usize = 64;
/// The longest time to live: ten years.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Expired entries one sweep deletes at most, so a sweep is never long.
pub(crate) const SWEEP_LIMIT: usize = 10_000;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A key or value over its cap, an empty key, or an increment of a non-integer.
    #[error("{0}")]
    Invalid(String),
    /// The backing store could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// Where key-value namespaces are kept. Every operation is atomic.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value of `key` in `namespace`, unless absent or expired.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, KvError>;
    /// Sets `key`, expiring after `ttl` when given.
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError>;
    /// Deletes `key`; true when it was there (and not expired).
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError>;
    /// Adds `delta` to the integer at `key` (absent: 0) and returns the sum;
    /// `Invalid` when the value is not an integer or the sum overflows.
    async fn increment(&self, namespace: &str, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Sets `key` to `value` if it holds `expected` (`None`: absent).
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError>;
}

/// Refuses a namespace name that is empty, longer than [`MAX_NAMESPACE`]
/// bytes, or has a character other than `A-Z a-z 0-9 _ -`.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a key-value namespace name must not be empty".into());
    }
    if name.len() > MAX_NAMESPACE {
        return Err(format!(
            "key-value namespace `{}…` is longer than {MAX_NAMESPACE} bytes",
            name.chars().take(16).collect::<String>()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "key-value namespace `{}` has {c:?}: only letters, digits, `_` and `-` are allowed",
            crate::printable::printable(name)
        ));
    }
    Ok(())
}

/// Refuses an empty key or one over [`MAX_KEY`].
pub(crate) fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid("the key is empty".into()));
    }
    if key.len() > MAX_KEY {
        return Err(KvError::Invalid(format!(
            "the key is {} bytes, over the {MAX_KEY}-byte cap",
            key.len()
        )));
    }
    Ok(())
}

/// Refuses a value over [`MAX_VALUE`].
pub(crate) fn check_value(value: &str) -> Result<(), KvError> {
    if value.len() > MAX_VALUE {
        return Err(KvError::Invalid(format!(
            "the value is {} bytes, over the {MAX_VALUE}-byte cap",
            value.len()
        )));
    }
    Ok(())
}

/// A time to live in milliseconds, at least 1 and at most [`MAX_TTL`].
pub(crate) fn ttl(ms: u64) -> Result<Duration, KvError> {
    let ttl = Duration::from_millis(ms);
    if ms == 0 || ttl > MAX_TTL {
        return Err(KvError::Invalid(format!(
            "ttl-ms {ms} is out of range: 1 to {} (ten years)",
            MAX_TTL.as_millis()
        )));
    }
    Ok(ttl)
}

/// The integer a stored value holds, for `increment`.
pub(crate) fn integer(value: &str) -> Result<i64, KvError> {
    value.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "out of the 64-bit range"
            }
            _ => "not an integer",
        };
        KvError::Invalid(format!("the value is {why}, so it cannot be incremented"))
    })
}

/// `current + delta`, or `Invalid` on overflow.
pub(crate) fn add(current: i64, delta: i64) -> Result<i64, KvError> {
    current.checked_add(delta).ok_or_else(|| {
        KvError::Invalid(format!(
            "incrementing {current} by {delta} overflows a 64-bit integer"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_checked() {
        for ok in ["counters", "a-b_C9", &"x".repeat(64)] {
            assert_eq!(check_namespace(ok), Ok(()), "{ok}");
        }
        assert!(check_namespace("").unwrap_err().contains("empty"));
        assert!(check_namespace(&"x".repeat(65)).unwrap_err().contains("64"));
        let e = check_namespace("a.b").unwrap_err();
        assert!(e.contains("`a.b` has '.'"), "{e}");
    }

    #[test]
    fn caps_and_integers() {
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY + 1)).is_err());
        assert!(check_value(&"v".repeat(MAX_VALUE)).is_ok());
        assert!(check_value(&"v".repeat(MAX_VALUE + 1)).is_err());
        assert!(ttl(0).is_err());
        assert_eq!(ttl(1500), Ok(Duration::from_millis(1500)));
        assert!(ttl(MAX_TTL.as_millis() as u64 + 1).is_err());
        assert_eq!(integer("-42"), Ok(-42));
        assert!(integer(" 4").is_err());
        assert!(integer("\"4\"").is_err());
        assert!(
            integer("99999999999999999999")
                .unwrap_err()
                .to_string()
                .contains("64-bit")
        );
        assert!(add(i64::MAX, 1).is_err());
    }
}
