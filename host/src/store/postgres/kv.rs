//! Key-value state in the shared database: the `kv` table, on a small pool
//! of its own (steps' state never waits behind the store's writer or its
//! reads). Every operation is one statement, atomic by itself: an increment
//! is an upsert that adds in the database, a compare-and-swap a conditional
//! update or insert. Expiry is by the database's clock (`now()`), the same
//! for every server of a fleet.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::error::SqlState;

use super::open::{Opened, pg_error, pool, pool_error};
use crate::kv::{KvError, KvStore};
use crate::store::StoreError;

/// Connections the key-value state takes at most per server.
const KV_POOL_SIZE: usize = 8;

/// The `kv` table of one store. See the module docs.
#[derive(Debug)]
pub(super) struct PgKv {
    pool: Pool,
    what: String,
}

/// Adds `$3` to the integer at (`$1`, `$2`), absent or expired counting as
/// 0; a value that is not an integer is cast from `'x'` to fail with
/// `invalid_text_representation`, an overflow fails with
/// `numeric_value_out_of_range`. A live key keeps its expiry.
const INCREMENT: &str = "
INSERT INTO kv AS k (namespace, key, value, expires_at) VALUES ($1, $2, $3::bigint::text, NULL)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = CASE WHEN k.expires_at <= now() THEN excluded.value
            ELSE ((CASE WHEN k.value ~ '^[+-]?[0-9]+$' THEN k.value ELSE 'x' END)::bigint
                  + $3::bigint)::text END,
    expires_at = CASE WHEN k.expires_at <= now() THEN NULL ELSE k.expires_at END
RETURNING value";

/// Sets (`$1`, `$2`) to `$3` only if it is absent or expired.
const INSERT_IF_ABSENT: &str = "
INSERT INTO kv AS k (namespace, key, value, expires_at) VALUES ($1, $2, $3, NULL)
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = NULL
    WHERE k.expires_at <= now()
RETURNING 1";

/// Sets (`$1`, `$2`) to `$3` only if it holds `$4` and is live.
const SWAP: &str = "
UPDATE kv SET value = $3
 WHERE namespace = $1 AND key = $2 AND value = $4
   AND (expires_at IS NULL OR expires_at > now())";

impl PgKv {
    /// The key-value table of the opened database, on its own pool.
    pub(super) fn new(opened: &Opened, what: &str) -> Result<PgKv, StoreError> {
        Ok(PgKv {
            pool: pool(&opened.connect, &opened.tls, KV_POOL_SIZE, what)?,
            what: what.to_string(),
        })
    }

    async fn client(&self) -> Result<Object, KvError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable(pool_error(&self.what, e)))
    }

    fn sql(&self, e: tokio_postgres::Error) -> KvError {
        unavailable(pg_error(&self.what, e))
    }

    /// Deletes up to `limit` expired entries; returns how many.
    pub(super) async fn sweep(&self, limit: usize) -> Result<u64, KvError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.client()
            .await?
            .execute(
                "DELETE FROM kv WHERE ctid IN
                   (SELECT ctid FROM kv WHERE expires_at <= now() LIMIT $1)",
                &[&limit],
            )
            .await
            .map_err(|e| self.sql(e))
    }
}

fn unavailable(e: StoreError) -> KvError {
    KvError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl KvStore for PgKv {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<String>, KvError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value, expires_at <= now() FROM kv WHERE namespace = $1 AND key = $2",
                &[&ns, &key],
            )
            .await
            .map_err(|e| self.sql(e))?;
        let Some(row) = row else { return Ok(None) };
        let expired: Option<bool> = row.get(1);
        if expired == Some(true) {
            client
                .execute(
                    "DELETE FROM kv WHERE namespace = $1 AND key = $2 AND expires_at <= now()",
                    &[&ns, &key],
                )
                .await
                .map_err(|e| self.sql(e))?;
            return Ok(None);
        }
        Ok(Some(row.get(0)))
    }

    async fn set(
        &self,
        ns: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let secs = ttl.map(|t| t.as_secs_f64());
        self.client()
            .await?
            .execute(
                "INSERT INTO kv (namespace, key, value, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (namespace, key) DO UPDATE
                 SET value = excluded.value, expires_at = excluded.expires_at",
                &[&ns, &key, &value, &secs],
            )
            .await
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM kv WHERE namespace = $1 AND key = $2
                 RETURNING expires_at IS NULL OR expires_at > now()",
                &[&ns, &key],
            )
            .await
            .map_err(|e| self.sql(e))?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    async fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let row = self
            .client()
            .await?
            .query_one(INCREMENT, &[&ns, &key, &delta])
            .await
            .map_err(|e| match e.code() {
                Some(&SqlState::INVALID_TEXT_REPRESENTATION) => KvError::Invalid(
                    "the value is not an integer, so it cannot be incremented".into(),
                ),
                Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE) => KvError::Invalid(format!(
                    "the value is out of the 64-bit range, or incrementing it by {delta} \
                     overflows a 64-bit integer"
                )),
                _ => self.sql(e),
            })?;
        let sum: String = row.get(0);
        sum.parse().map_err(|_| {
            KvError::Unavailable(format!("{}: the sum `{sum}` is not an integer", self.what))
        })
    }

    async fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, KvError> {
        let client = self.client().await?;
        let changed = match expected {
            None => client
                .query_opt(INSERT_IF_ABSENT, &[&ns, &key, &value])
                .await
                .map(|row| row.is_some()),
            Some(expected) => client
                .execute(SWAP, &[&ns, &key, &value, &expected])
                .await
                .map(|n| n == 1),
        };
        changed.map_err(|e| self.sql(e))
    }
}
