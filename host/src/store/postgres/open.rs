//! Connecting: the pool every read and write borrows from, one connection
//! of its own for the migrations at open, and what errors become.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::{Connect, PgUrl};
use super::{schema, tls};
use crate::store::StoreError;

/// Connections at most per server: the writer's, the claimer's, readers'.
const POOL_SIZE: usize = 12;
/// How long a read or write waits for a pooled connection (or for a new
/// one to open) before the database counts as unreachable.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A database ready for a store: migrated, with a pool on it.
pub(super) struct Opened {
    pub(super) pool: Pool,
    pub(super) connect: Connect,
    pub(super) tls: MakeRustlsConnect,
}

/// Connects to `url`, migrates its schema, and opens the pool.
pub(super) async fn open(url: &PgUrl) -> Result<Opened, StoreError> {
    let what = url.shown();
    let connect = url
        .connect()
        .map_err(|why| StoreError::Backend(format!("{what}: {why}")))?;
    let tls =
        tls::connector(&connect).map_err(|why| StoreError::Backend(format!("{what}: {why}")))?;
    let mut client = connect_one(&connect, &tls, &what).await?;
    schema::migrate(&mut client, &what).await?;
    drop(client);
    let pool = pool(&connect, &tls, POOL_SIZE, &what)?;
    Ok(Opened { pool, connect, tls })
}

/// A pool of at most `size` connections, opened as they are needed.
pub(super) fn pool(
    connect: &Connect,
    tls: &MakeRustlsConnect,
    size: usize,
    what: &str,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        connect.config.clone(),
        tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| StoreError::Backend(format!("{what}: {e}")))
}

/// One connection outside the pool, its I/O driven by a task of its own.
pub(super) async fn connect_one(
    connect: &Connect,
    tls: &MakeRustlsConnect,
    what: &str,
) -> Result<Client, StoreError> {
    let (client, connection) = connect
        .config
        .connect(tls.clone())
        .await
        .map_err(|e| pg_error(what, e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Whether `e` says the database is away or busy for now (the connection
/// broke, timed out, the server is restarting), so that the same call may
/// succeed later; not a mistake of the statement.
pub(super) fn transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }
        None => {
            // Kinds tokio-postgres keeps private; their text is stable.
            let text = e.to_string();
            [
                "error communicating with the server",
                "error connecting to server",
                "timeout waiting for server",
                "error performing TLS handshake",
            ]
            .iter()
            .any(|kind| text.starts_with(kind))
        }
    }
}

/// What a client error becomes: [`StoreError::Unreachable`] when the
/// database is away, else [`StoreError::Backend`] naming it.
pub(super) fn pg_error(what: &str, e: tokio_postgres::Error) -> StoreError {
    let why = match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    };
    if transient(&e) {
        StoreError::Unreachable {
            what: what.to_string(),
            why,
        }
    } else {
        StoreError::Backend(format!("{what}: {why}"))
    }
}

/// What failing to get a pooled connection becomes.
pub(super) fn pool_error(what: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error(what, e),
        PoolError::Timeout(_) => StoreError::Unreachable {
            what: what.to_string(),
            why: format!("no connection within {}s", POOL_WAIT.as_secs()),
        },
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Backend(format!("{what}: {other}")),
    }
}
