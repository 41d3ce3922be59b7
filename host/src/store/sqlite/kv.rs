//! Key-value state in the store's file: the `kv` table, on a connection of
//! its own rather than through the writer, so that every answer is
//! immediate and every operation one transaction of its own.
//!
//! One connection serves the operations in turn (SQLite has one writer at
//! a time anyway); they wait for it asynchronously and run off the runtime.
//! An operation whose caller goes away (its step's deadline) is interrupted
//! and rolled back. Commits use `synchronous=NORMAL`, as step results do:
//! they survive a crash of the process; a power loss can lose the last ones.
//! Expiry times are this machine's clock, in Unix milliseconds.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, InterruptHandle, OptionalExtension, TransactionBehavior, params};

use crate::kv::{KvError, KvStore, add, integer};
use crate::store::{StoreError, unix_ms};

/// The connection and the store's locked file, which must outlive it
/// (closing the file drops the process's SQLite locks on it).
struct Conn {
    conn: Connection,
    _file: Arc<File>,
}

/// The `kv` table of one store. See the module docs.
pub(super) struct SqliteKv {
    name: String,
    /// `None` for a store opened for reading only.
    conn: Option<Arc<tokio::sync::Mutex<Conn>>>,
}

impl std::fmt::Debug for SqliteKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteKv")
            .field("name", &self.name)
            .finish()
    }
}

/// Interrupts the statement running on a connection when dropped armed:
/// when the operation's caller went away before it finished.
struct InterruptOnDrop(Option<InterruptHandle>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }
}

impl SqliteKv {
    /// The key-value table of the store at `path`, on a new connection;
    /// `file` is the store's locked file.
    pub(super) fn open(path: &Path, file: Arc<File>) -> Result<SqliteKv, StoreError> {
        let name = super::open::shown(path);
        let conn = super::open::write_connection(path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| super::open::sqlite_error(&name, e))?;
        Ok(SqliteKv {
            name,
            conn: Some(Arc::new(tokio::sync::Mutex::new(Conn {
                conn,
                _file: file,
            }))),
        })
    }

    /// The key-value table of a store opened for reading: every operation
    /// is refused.
    pub(super) fn read_only(path: &Path) -> SqliteKv {
        SqliteKv {
            name: super::open::shown(path),
            conn: None,
        }
    }

    /// Runs `op` on the connection, off the runtime, with the time now in
    /// Unix milliseconds.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection, i64) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let Some(conn) = &self.conn else {
            return Err(KvError::Unavailable(format!(
                "{}: the store was opened for reading only",
                self.name
            )));
        };
        let mut held = conn.clone().lock_owned().await;
        let mut interrupt = InterruptOnDrop(Some(held.conn.get_interrupt_handle()));
        let task = tokio::task::spawn_blocking(move || {
            let now = unix_ms::from(SystemTime::now());
            op(&mut held.conn, now)
        });
        let result = task.await;
        interrupt.0 = None;
        result.map_err(|e| {
            KvError::Unavailable(format!("{}: a key-value operation failed: {e}", self.name))
        })?
    }

    /// Deletes up to `limit` expired entries; returns how many.
    pub(super) async fn sweep(&self, limit: usize) -> Result<usize, KvError> {
        let name = self.name.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn, now| {
            conn.execute(
                "DELETE FROM kv WHERE rowid IN
                   (SELECT rowid FROM kv WHERE expires_ms <= ?1 LIMIT ?2)",
                params![now, limit],
            )
            .map_err(|e| unavailable(&name, e))
        })
        .await
    }
}

fn unavailable(name: &str, e: rusqlite::Error) -> KvError {
    KvError::Unavailable(format!("{name}: {e}"))
}

/// Whether an entry expiring at `expires` (Unix ms) is still there at `now`.
fn live(expires: Option<i64>, now: i64) -> bool {
    expires.is_none_or(|at| at > now)
}

/// The live value and expiry at (`ns`, `key`), inside `tx`.
fn current(
    tx: &rusqlite::Transaction<'_>,
    ns: &str,
    key: &str,
    now: i64,
) -> rusqlite::Result<Option<(String, Option<i64>)>> {
    let row: Option<(String, Option<i64>)> = tx
        .query_row(
            "SELECT value, expires_ms FROM kv WHERE namespace = ?1 AND key = ?2",
            params![ns, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.filter(|(_, expires)| live(*expires, now)))
}

fn put(
    conn: &Connection,
    ns: &str,
    key: &str,
    value: &str,
    expires: Option<i64>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO kv (namespace, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (namespace, key) DO UPDATE
         SET value = excluded.value, expires_ms = excluded.expires_ms",
        params![ns, key, value, expires],
    )
}

#[async_trait::async_trait]
impl KvStore for SqliteKv {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<String>, KvError> {
        let (ns, key, name) = (ns.to_string(), key.to_string(), self.name.clone());
        self.with(move |conn, now| {
            let sql = |e| unavailable(&name, e);
            let row: Option<(String, Option<i64>)> = conn
                .query_row(
                    "SELECT value, expires_ms FROM kv WHERE namespace = ?1 AND key = ?2",
                    params![ns, key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql)?;
            match row {
                Some((value, expires)) if live(expires, now) => Ok(Some(value)),
                Some(_) => {
                    conn.execute(
                        "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 AND expires_ms <= ?3",
                        params![ns, key, now],
                    )
                    .map_err(sql)?;
                    Ok(None)
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let (ns, key, value) = (ns.to_string(), key.to_string(), value.to_string());
        let name = self.name.clone();
        let ttl_ms = ttl.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        self.with(move |conn, now| {
            let expires = ttl_ms.map(|ms| now.saturating_add(ms));
            put(conn, &ns, &key, &value, expires)
                .map(drop)
                .map_err(|e| unavailable(&name, e))
        })
        .await
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        let (ns, key, name) = (ns.to_string(), key.to_string(), self.name.clone());
        self.with(move |conn, now| {
            let gone: Option<Option<i64>> = conn
                .query_row(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 RETURNING expires_ms",
                    params![ns, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| unavailable(&name, e))?;
            Ok(gone.is_some_and(|expires| live(expires, now)))
        })
        .await
    }

    async fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let (ns, key, name) = (ns.to_string(), key.to_string(), self.name.clone());
        self.with(move |conn, now| {
            let sql = |e| unavailable(&name, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let (sum, expires) = match current(&tx, &ns, &key, now).map_err(sql)? {
                Some((value, expires)) => (add(integer(&value)?, delta)?, expires),
                None => (delta, None),
            };
            put(&tx, &ns, &key, &sum.to_string(), expires).map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(sum)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError> {
        let (ns, key, value) = (ns.to_string(), key.to_string(), value.to_string());
        let expected = expected.map(str::to_string);
        let name = self.name.clone();
        self.with(move |conn, now| {
            let sql = |e| unavailable(&name, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let current = current(&tx, &ns, &key, now).map_err(sql)?;
            if current.as_ref().map(|(v, _)| v.as_str()) != expected.as_deref() {
                return Ok(false);
            }
            let expires = current.and_then(|(_, expires)| expires);
            put(&tx, &ns, &key, &value, expires).map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(true)
        })
        .await
    }
}
