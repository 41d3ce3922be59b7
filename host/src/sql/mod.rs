//! SQL databases for steps: declared by the operator (`[databases.NAME]` in
//! `flowhost.toml`, [`config`]), pooled by the host ([`sqlite`],
//! [`postgres`]), granted per step (`allow: {sql: [NAME]}`), reached
//! through the WIT `sql` interface ([`guest`]). Results are JSON built under
//! the database's row and byte caps ([`rows`]); what a step sends is bounded
//! too ([`caps`]). A call's deadline ends its statement on the database.

mod caps;
mod config;
mod guest;
mod pg_types;
mod postgres;
mod rows;
mod sqlite;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

pub use config::DatabaseConfig;
pub(crate) use config::check;
pub(crate) use guest::CallSql;

use crate::runtime::bindings::flowhost::step::sql::{Error, Statement, Value};
use config::DbUrl;
use rows::Caps;

/// A database could not be opened (a SQLite file) or its settings are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database `{name}`: {why}")]
#[non_exhaustive]
pub struct SqlError {
    /// The database's name in `flowhost.toml`.
    pub name: String,
    /// Why.
    pub why: String,
}

/// The declared databases, by name, with their pools.
#[derive(Default)]
pub struct Databases {
    by_name: BTreeMap<String, Database>,
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Databases {
    /// Opens every database in `configs`: SQLite files are opened (created
    /// if absent) now, relative paths taken from `base_dir`; PostgreSQL pools
    /// connect when first used, so a database down at start stops nothing.
    pub async fn open(
        configs: &BTreeMap<String, DatabaseConfig>,
        base_dir: &Path,
    ) -> Result<Databases, SqlError> {
        let mut by_name = BTreeMap::new();
        for (name, cfg) in configs {
            let fail = |why: String| SqlError {
                name: name.clone(),
                why,
            };
            config::check_one(name, cfg).map_err(fail)?;
            let caps = Caps {
                max_rows: cfg.max_rows,
                max_bytes: cfg.max_bytes,
            };
            let backend = match DbUrl::parse(&cfg.url, base_dir).map_err(fail)? {
                DbUrl::Sqlite(path) => {
                    let (n, size) = (name.clone(), cfg.pool_size);
                    let pool = tokio::task::spawn_blocking(move || {
                        sqlite::Pool::open(&n, &path, size, caps)
                    })
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .map_err(fail)?;
                    Backend::Sqlite(pool)
                }
                DbUrl::Postgres(url) => Backend::Postgres(
                    postgres::Pool::open(name, &url, cfg.pool_size, caps).map_err(fail)?,
                ),
            };
            by_name.insert(name.clone(), Database { backend });
        }
        Ok(Databases { by_name })
    }

    /// The database called `name`.
    fn get(&self, name: &str) -> Option<&Database> {
        self.by_name.get(name)
    }
}

struct Database {
    backend: Backend,
}

enum Backend {
    Sqlite(sqlite::Pool),
    Postgres(postgres::Pool),
}

impl Database {
    async fn query(
        &self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<String, Error> {
        match &self.backend {
            Backend::Sqlite(pool) => pool.query(sql, params, deadline).await,
            Backend::Postgres(pool) => pool.query(&sql, params).await,
        }
    }

    async fn execute(
        &self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<u64, Error> {
        match &self.backend {
            Backend::Sqlite(pool) => pool.execute(sql, params, deadline).await,
            Backend::Postgres(pool) => pool.execute(&sql, params).await,
        }
    }

    async fn batch(
        &self,
        statements: Vec<Statement>,
        deadline: Instant,
    ) -> Result<Vec<u64>, Error> {
        match &self.backend {
            Backend::Sqlite(pool) => pool.batch(statements, deadline).await,
            Backend::Postgres(pool) => pool.batch(statements).await,
        }
    }

    async fn begin(&self, deadline: Instant) -> Result<Tx, Error> {
        Ok(match &self.backend {
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin(deadline).await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

/// An open transaction, whichever the backend.
enum Tx {
    Sqlite(sqlite::Tx),
    Postgres(postgres::Tx),
}

impl Tx {
    async fn query(
        &mut self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<String, Error> {
        match self {
            Tx::Sqlite(tx) => tx.query(sql, params, deadline).await,
            Tx::Postgres(tx) => tx.query(&sql, params).await,
        }
    }

    async fn execute(
        &mut self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<u64, Error> {
        match self {
            Tx::Sqlite(tx) => tx.execute(sql, params, deadline).await,
            Tx::Postgres(tx) => tx.execute(&sql, params).await,
        }
    }

    async fn commit(self, deadline: Instant) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit(deadline).await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    async fn rollback(self, deadline: Instant) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback(deadline).await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// `e`, saying it was the batch's statement `i` (counted from 0) that failed.
fn at_statement(e: Error, i: usize) -> Error {
    let at = |m: String| format!("statement {i}: {m}; nothing of the batch was applied");
    match e {
        Error::Denied(m) => Error::Denied(at(m)),
        Error::Invalid(m) => Error::Invalid(at(m)),
        Error::Rejected(m) => Error::Rejected(at(m)),
        Error::TooLarge(m) => Error::TooLarge(at(m)),
        Error::Unavailable(m) => Error::Unavailable(at(m)),
    }
}
