//! Key-value state for steps, in namespaces granted per step
//! (`allow: {kv: [NAME]}`), kept by a [`KvStore`]: the run store's by default.
//!
//! TODO(issue 17): backends (memory, SQLite, PostgreSQL), caps, TTL.

mod guest;

use std::time::Duration;

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
    /// Deletes `key`; true when it was there.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError>;
    /// Adds `delta` to the integer at `key` (absent: 0) and returns the sum.
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
