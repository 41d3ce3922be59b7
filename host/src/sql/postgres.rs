//! PostgreSQL databases: a deadpool-postgres pool opened lazily (a database
//! down at start does not stop the host), statements prepared so each
//! parameter is converted to the type the server inferred, rows streamed
//! into JSON under the caps. A statement still running when its call's
//! future is dropped is cancelled on the server (a cancel request with the
//! pool's TLS), and its connection is closed rather than reused.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, PoolError, RecyclingMethod, Runtime};
use futures::{StreamExt, pin_mut};
use tokio_postgres::Statement as Prepared;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_types::{self, Raw};
use super::rows::{Caps, RowsJson};
use super::{Error, Statement, Value};
use crate::store::postgres::PgUrl;

/// How long opening a new connection may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection; past it the cache starts over.
const MAX_CACHED_STATEMENTS: usize = 256;

/// A pool of connections to one PostgreSQL database.
pub(crate) struct Pool {
    name: String,
    caps: Caps,
    pool: deadpool_postgres::Pool,
    tls: MakeRustlsConnect,
}

impl Pool {
    /// The pool; no connection is made until one is needed.
    pub(crate) fn open(
        name: &str,
        url: &PgUrl,
        pool_size: u32,
        caps: Caps,
    ) -> Result<Pool, String> {
        let connect = url.connect().map_err(|why| format!("`{url}`: {why}"))?;
        let tls = crate::store::postgres::tls::connector(&connect)
            .map_err(|why| format!("`{url}`: {why}"))?;
        let manager = Manager::from_config(
            connect.config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // No wait timeout: a call's deadline bounds its wait for a connection.
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(pool_size as usize)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| format!("`{url}`: {e}"))?;
        Ok(Pool {
            name: name.to_string(),
            caps,
            pool,
            tls,
        })
    }

    async fn session(&self) -> Result<Session, Error> {
        let obj = self
            .pool
            .get()
            .await
            .map_err(|e| pool_error(&self.name, e))?;
        Ok(Session {
            name: self.name.clone(),
            caps: self.caps,
            obj: Some(obj),
            tls: self.tls.clone(),
            running: false,
            in_tx: false,
        })
    }

    pub(crate) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<String, Error> {
        self.session().await?.query(sql, params).await
    }

    pub(crate) async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        self.session().await?.execute(sql, params).await
    }

    pub(crate) async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<u64>, Error> {
        let mut s = self.session().await?;
        s.simple("BEGIN").await?;
        s.in_tx = true;
        let mut counts = Vec::with_capacity(statements.len());
        for (i, st) in statements.into_iter().enumerate() {
            match s.execute(&st.sql, st.params).await {
                Ok(n) => counts.push(n),
                // Dropping the session rolls the transaction back.
                Err(e) => return Err(super::at_statement(e, i)),
            }
        }
        s.simple("COMMIT").await?;
        s.in_tx = false;
        Ok(counts)
    }

    pub(crate) async fn begin(&self) -> Result<Tx, Error> {
        let mut s = self.session().await?;
        s.simple("BEGIN").await?;
        s.in_tx = true;
        Ok(Tx(s))
    }
}

/// A transaction: one connection held between the call's uses; rolled back
/// when dropped uncommitted.
pub(crate) struct Tx(Session);

impl Tx {
    pub(crate) async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<String, Error> {
        self.0.query(sql, params).await
    }

    pub(crate) async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        self.0.execute(sql, params).await
    }

    pub(crate) async fn commit(mut self) -> Result<(), Error> {
        self.0.simple("COMMIT").await?;
        self.0.in_tx = false;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<(), Error> {
        self.0.simple("ROLLBACK").await?;
        self.0.in_tx = false;
        Ok(())
    }
}

/// One pooled connection in use. Dropped while a statement runs, it cancels
/// the statement and closes the connection; dropped inside a transaction,
/// it rolls back before the connection goes back to the pool.
struct Session {
    name: String,
    caps: Caps,
    obj: Option<Object>,
    tls: MakeRustlsConnect,
    running: bool,
    in_tx: bool,
}

impl Session {
    fn client(&self) -> Result<&Object, Error> {
        self.obj.as_ref().ok_or_else(|| {
            Error::Unavailable(format!("database `{}`: the connection was lost", self.name))
        })
    }

    async fn prepare(&mut self, sql: &str) -> Result<Prepared, Error> {
        let client = self.client()?;
        if client.statement_cache.size() >= MAX_CACHED_STATEMENTS {
            client.statement_cache.clear();
        }
        self.running = true;
        let prepared = self.client()?.prepare_cached(sql).await;
        self.running = false;
        prepared.map_err(|e| pg_error(&self.name, &e))
    }

    async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<String, Error> {
        let stmt = self.prepare(sql).await?;
        // Refused before it runs: a column no step could read.
        if let Some(col) = stmt
            .columns()
            .iter()
            .find(|c| !pg_types::supported(c.type_()))
        {
            return Err(Error::Invalid(format!(
                "database `{}`: column `{}` has type {}, which cannot be read; cast it to text in the SQL (`{}::text`)",
                self.name,
                col.name(),
                col.type_().name(),
                col.name()
            )));
        }
        let params = pg_types::params(&self.name, stmt.params(), params)?;
        let (name, caps) = (self.name.clone(), self.caps);
        self.running = true;
        let result = async {
            let client = self.client()?;
            let stream = client
                .query_raw(&stmt, params.iter())
                .await
                .map_err(|e| pg_error(&name, &e))?;
            pin_mut!(stream);
            let columns = stmt.columns();
            let mut out = RowsJson::new(&name, caps, columns.iter().map(|c| c.name()));
            let mut scratch = String::new();
            while let Some(row) = stream.next().await {
                let row = row.map_err(|e| pg_error(&name, &e))?;
                out.row()?;
                for (i, col) in columns.iter().enumerate() {
                    let raw: Option<Raw<'_>> = row.try_get(i).map_err(|e| pg_error(&name, &e))?;
                    let cell = pg_types::cell(col.type_(), raw.map(|r| r.0), &mut scratch)
                        .map_err(|why| {
                            Error::Invalid(format!(
                                "database `{name}`: column `{}`: {why}",
                                col.name()
                            ))
                        })?;
                    out.cell(cell)?;
                }
                out.end_row()?;
            }
            Ok(out.finish())
        }
        .await;
        // A result stopped early (a cap) leaves rows in flight: the
        // connection is not reused, and its statement is cancelled.
        if result.is_ok() {
            self.running = false;
        }
        result
    }

    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let stmt = self.prepare(sql).await?;
        let params = pg_types::params(&self.name, stmt.params(), params)?;
        self.running = true;
        let result = self.client()?.execute_raw(&stmt, params.iter()).await;
        self.running = false;
        result.map_err(|e| pg_error(&self.name, &e))
    }

    async fn simple(&mut self, sql: &str) -> Result<(), Error> {
        self.running = true;
        let result = self.client()?.batch_execute(sql).await;
        self.running = false;
        result.map_err(|e| pg_error(&self.name, &e))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(obj) = self.obj.take() else {
            return;
        };
        if !self.running && !self.in_tx {
            return; // back to the pool as it is
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to roll back on: close the connection (the server
            // rolls back what it held).
            drop(Object::take(obj));
            return;
        };
        if self.running {
            // Out of the pool first: a cancel request must never reach a
            // statement another call started on this connection.
            let client = Object::take(obj);
            let tls = self.tls.clone();
            rt.spawn(async move {
                let _ = client.cancel_token().cancel_query(tls).await;
                drop(client);
            });
        } else {
            rt.spawn(async move {
                if obj.batch_execute("ROLLBACK").await.is_err() {
                    drop(Object::take(obj));
                }
            });
        }
    }
}

/// What a PostgreSQL error means to the step: SQLSTATE class 23
/// (constraints) and 40 (serialization, deadlock) are `rejected`; a broken
/// or refused connection is `unavailable`; the rest are `invalid`.
fn pg_error(db: &str, e: &tokio_postgres::Error) -> Error {
    let Some(dbe) = e.as_db_error() else {
        return Error::Unavailable(format!("database `{db}`: {e}"));
    };
    let code = dbe.code().code();
    let message = format!("database `{db}`: {} (SQLSTATE {code})", dbe.message());
    let message = match dbe.detail() {
        Some(detail) => format!("{message}: {detail}"),
        None => message,
    };
    match code.get(..2).unwrap_or_default() {
        "23" | "40" => Error::Rejected(message),
        "08" | "53" | "57" | "58" | "3D" | "28" => Error::Unavailable(message),
        _ => Error::Invalid(message),
    }
}

fn pool_error(db: &str, e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => pg_error(db, &e),
        PoolError::Closed => Error::Unavailable(format!("database `{db}`: the pool is closed")),
        other => Error::Unavailable(format!("database `{db}`: {other}")),
    }
}
