//! Key-value state in this process only: lost when it exits. Bounded in
//! bytes. Its clock is tokio's, so a `flowhost test` case on virtual time
//! sees entries expire as its time advances.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{KvError, KvStore, add, integer};

/// What the memory store keeps at most by default: 64 MiB of keys and values.
const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// What one entry costs beyond its text, roughly.
const ENTRY_OVERHEAD: usize = 64;
/// Expired entries one write removes at most, beside the key it writes.
const SWEEP_PER_WRITE: usize = 16;

type Key = (String, String);

/// Key-value state in memory. See the module docs.
#[derive(Debug)]
pub struct MemoryKv {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Entries with an expiry, soonest first: what a sweep removes.
    expiring: BTreeSet<(Instant, Key)>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKv {
    /// An empty store keeping at most 64 MiB.
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// An empty store keeping at most `max_bytes` of keys and values.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        MemoryKv {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every expired entry (for the store's prune); returns how many.
    pub(crate) fn sweep(&self) -> usize {
        self.lock().sweep(Instant::now(), super::SWEEP_LIMIT)
    }
}

fn cost(key: &Key, value: &str) -> usize {
    ENTRY_OVERHEAD + key.0.len() + key.1.len() + value.len()
}

fn key(namespace: &str, key: &str) -> Key {
    (namespace.to_string(), key.to_string())
}

impl Inner {
    /// The live entry at `key`; an expired one is removed.
    fn live(&mut self, key: &Key, now: Instant) -> Option<&Entry> {
        let expired = self
            .entries
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|at| at <= now));
        if expired {
            self.remove(key);
        }
        self.entries.get(key)
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.bytes -= cost(key, &entry.value);
        if let Some(at) = entry.expires {
            self.expiring.remove(&(at, key.clone()));
        }
        Some(entry)
    }

    /// Puts `value` at `key`, unless that takes the store over `max_bytes`.
    fn put(
        &mut self,
        key: Key,
        value: String,
        expires: Option<Instant>,
        max_bytes: usize,
    ) -> Result<(), KvError> {
        let old = self.entries.get(&key).map_or(0, |e| cost(&key, &e.value));
        if self.bytes - old + cost(&key, &value) > max_bytes {
            return Err(KvError::Unavailable(format!(
                "the in-memory key-value store is full ({max_bytes} bytes)"
            )));
        }
        self.remove(&key);
        self.bytes += cost(&key, &value);
        if let Some(at) = expires {
            self.expiring.insert((at, key.clone()));
        }
        self.entries.insert(key, Entry { value, expires });
        Ok(())
    }

    /// Removes up to `limit` expired entries, soonest first.
    fn sweep(&mut self, now: Instant, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            let Some((at, key)) = self.expiring.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.remove(&key);
            removed += 1;
        }
        removed
    }
}

#[async_trait::async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, namespace: &str, k: &str) -> Result<Option<String>, KvError> {
        let mut inner = self.lock();
        Ok(inner
            .live(&key(namespace, k), Instant::now())
            .map(|e| e.value.clone()))
    }

    async fn set(
        &self,
        namespace: &str,
        k: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.sweep(now, SWEEP_PER_WRITE);
        let expires = ttl.map(|ttl| now + ttl);
        inner.put(
            key(namespace, k),
            value.to_string(),
            expires,
            self.max_bytes,
        )
    }

    async fn delete(&self, namespace: &str, k: &str) -> Result<bool, KvError> {
        let key = key(namespace, k);
        let mut inner = self.lock();
        let live = inner.live(&key, Instant::now()).is_some();
        inner.remove(&key);
        Ok(live)
    }

    async fn increment(&self, namespace: &str, k: &str, delta: i64) -> Result<i64, KvError> {
        let now = Instant::now();
        let key = key(namespace, k);
        let mut inner = self.lock();
        inner.sweep(now, SWEEP_PER_WRITE);
        let (sum, expires) = match inner.live(&key, now) {
            Some(e) => (add(integer(&e.value)?, delta)?, e.expires),
            None => (delta, None),
        };
        inner.put(key, sum.to_string(), expires, self.max_bytes)?;
        Ok(sum)
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        k: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError> {
        let now = Instant::now();
        let key = key(namespace, k);
        let mut inner = self.lock();
        inner.sweep(now, SWEEP_PER_WRITE);
        let (current, expires) = match inner.live(&key, now) {
            Some(e) => (Some(e.value.as_str()), e.expires),
            None => (None, None),
        };
        if current != expected {
            return Ok(false);
        }
        inner.put(key, value.to_string(), expires, self.max_bytes)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time_and_are_swept() {
        let kv = MemoryKv::new();
        kv.set("n", "a", "1", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        kv.set("n", "b", "2", None).await.unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(kv.get("n", "a").await.unwrap().as_deref(), Some("1"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(kv.get("n", "a").await.unwrap(), None);
        kv.set("n", "c", "3", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(kv.sweep(), 1);
        let inner = kv.lock();
        assert_eq!(inner.entries.len(), 1, "only `b` is left");
        assert!(inner.expiring.is_empty());
        assert_eq!(inner.bytes, cost(&key("n", "b"), "2"));
    }

    #[tokio::test]
    async fn a_full_store_refuses_writes_but_not_replacements() {
        let kv = MemoryKv::with_max_bytes(200);
        kv.set("n", "a", &"x".repeat(100), None).await.unwrap();
        let e = kv.set("n", "b", &"y".repeat(100), None).await.unwrap_err();
        assert!(
            matches!(e, KvError::Unavailable(ref m) if m.contains("full")),
            "{e}"
        );
        kv.set("n", "a", &"z".repeat(120), None).await.unwrap();
        assert!(kv.delete("n", "a").await.unwrap());
        kv.set("n", "b", &"y".repeat(100), None).await.unwrap();
    }
}
