//! SQLite databases: a small pool of connections to one file, every use on
//! the blocking pool, interrupted on the database side (`sqlite3_interrupt`)
//! when the call's future is dropped at its deadline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, InterruptHandle, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::rows::{Caps, Cell, RowsJson};
use super::{Error, Statement, Value};

/// How long a statement waits for another connection's lock at most; the
/// call's deadline, when nearer, is the bound.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one SQLite file.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    path: PathBuf,
    caps: Caps,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// Opens (creating) the file and checks it is a database; blocking.
    pub(crate) fn open(
        name: &str,
        path: &Path,
        pool_size: u32,
        caps: Caps,
    ) -> Result<Pool, String> {
        let conn = connect(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        Ok(Pool {
            inner: Arc::new(Inner {
                name: name.to_string(),
                path: path.to_path_buf(),
                caps,
                idle: Mutex::new(vec![conn]),
                permits: Arc::new(Semaphore::new(pool_size as usize)),
            }),
        })
    }

    /// A connection, once one of the pool's is free: waiting is just dropped
    /// when the call's deadline passes.
    async fn acquire(&self) -> Result<Conn, Error> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "database `{}`: the pool is closed",
                    self.inner.name
                ))
            })?;
        let conn = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        Ok(Conn {
            conn,
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Rows of `sql` as JSON.
    pub(crate) async fn query(
        &self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<String, Error> {
        let conn = self.acquire().await?;
        let caps = self.inner.caps;
        let (_, result) = blocking(conn, deadline, move |c, db| {
            query(c, db, caps, &sql, &params)
        })
        .await?;
        result
    }

    /// Rows changed by `sql`.
    pub(crate) async fn execute(
        &self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<u64, Error> {
        let conn = self.acquire().await?;
        let (_, result) =
            blocking(conn, deadline, move |c, db| execute(c, db, &sql, &params)).await?;
        result
    }

    /// The statements in one transaction.
    pub(crate) async fn batch(
        &self,
        statements: Vec<Statement>,
        deadline: Instant,
    ) -> Result<Vec<u64>, Error> {
        let conn = self.acquire().await?;
        let (_, result) = blocking(conn, deadline, move |c, db| batch(c, db, &statements)).await?;
        result
    }

    /// A transaction holding one connection.
    pub(crate) async fn begin(&self, deadline: Instant) -> Result<Tx, Error> {
        let conn = self.acquire().await?;
        let (conn, result) = blocking(conn, deadline, |c, db| {
            c.execute_batch("BEGIN").map_err(|e| error(db, e))
        })
        .await?;
        result?;
        Ok(Tx {
            caps: self.inner.caps,
            conn: Some(conn),
        })
    }
}

/// Opens `path` for the pool: created if absent, WAL, foreign keys on.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// A connection of the pool (opened on first use), and its place in it.
/// Dropped, it goes back rolled back (or is closed when that fails).
pub(crate) struct Conn {
    conn: Option<Connection>,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

/// What the call's side and the blocking side share: the handle to
/// interrupt the running statement, and whether the call has gone.
#[derive(Default)]
struct Shared {
    handle: Option<InterruptHandle>,
    cancelled: bool,
}

/// Interrupts the statement running for a call whose future was dropped.
struct Interrupt(Arc<Mutex<Shared>>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        let mut shared = self.0.lock().unwrap_or_else(|e| e.into_inner());
        shared.cancelled = true;
        if let Some(handle) = shared.handle.take() {
            handle.interrupt();
        }
    }
}

/// Runs `op` on `conn` on the blocking pool and gives the connection back
/// with its result. Dropping the returned future interrupts `op`; the
/// connection then goes back to the pool from the blocking side, rolled back.
async fn blocking<T: Send + 'static>(
    mut conn: Conn,
    deadline: Instant,
    op: impl FnOnce(&mut Connection, &str) -> Result<T, Error> + Send + 'static,
) -> Result<(Conn, Result<T, Error>), Error> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let interrupt = Interrupt(shared.clone());
    let name = conn.inner.name.clone();
    let task = tokio::task::spawn_blocking(move || {
        let result = run_op(&mut conn, &shared, deadline, op);
        // Never interrupt a connection once it is back in the pool.
        shared.lock().unwrap_or_else(|e| e.into_inner()).handle = None;
        (conn, result)
    });
    let joined = task.await;
    drop(interrupt);
    joined.map_err(|e| Error::Unavailable(format!("database `{name}`: {e}")))
}

fn run_op<T>(
    conn: &mut Conn,
    shared: &Mutex<Shared>,
    deadline: Instant,
    op: impl FnOnce(&mut Connection, &str) -> Result<T, Error>,
) -> Result<T, Error> {
    let name = conn.inner.name.clone();
    if conn.conn.is_none() {
        let opened = connect(&conn.inner.path)
            .map_err(|e| Error::Unavailable(format!("database `{name}`: cannot open it: {e}")))?;
        conn.conn = Some(opened);
    }
    let Some(c) = conn.conn.as_mut() else {
        return Err(Error::Unavailable(format!(
            "database `{name}`: no connection"
        )));
    };
    {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        if shared.cancelled {
            return Err(Error::Unavailable(format!(
                "database `{name}`: the call ended"
            )));
        }
        shared.handle = Some(c.get_interrupt_handle());
    }
    let left = deadline.saturating_duration_since(Instant::now());
    c.busy_timeout(left.min(BUSY_TIMEOUT))
        .map_err(|e| error(&name, e))?;
    op(c, &name)
}

/// A transaction: one connection held between the call's uses.
pub(crate) struct Tx {
    caps: Caps,
    /// `None` while a statement runs (and for good if its call ended then).
    conn: Option<Conn>,
}

impl Tx {
    pub(crate) async fn query(
        &mut self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<String, Error> {
        let caps = self.caps;
        self.on_conn(deadline, move |c, db| query(c, db, caps, &sql, &params))
            .await
    }

    pub(crate) async fn execute(
        &mut self,
        sql: String,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Result<u64, Error> {
        self.on_conn(deadline, move |c, db| execute(c, db, &sql, &params))
            .await
    }

    /// Commits; the connection goes back to the pool either way.
    pub(crate) async fn commit(mut self, deadline: Instant) -> Result<(), Error> {
        self.on_conn(deadline, |c, db| {
            c.execute_batch("COMMIT").map_err(|e| error(db, e))
        })
        .await
    }

    /// Rolls back; the connection goes back to the pool.
    pub(crate) async fn rollback(mut self, deadline: Instant) -> Result<(), Error> {
        self.on_conn(deadline, |c, db| {
            c.execute_batch("ROLLBACK").map_err(|e| error(db, e))
        })
        .await
    }

    async fn on_conn<T: Send + 'static>(
        &mut self,
        deadline: Instant,
        op: impl FnOnce(&mut Connection, &str) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| Error::Unavailable("the transaction's connection was lost".into()))?;
        let (conn, result) = blocking(conn, deadline, op).await?;
        self.conn = Some(conn);
        result
    }
}

impl Drop for Tx {
    /// Rolled back and returned on the blocking pool, off the async runtime.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(conn))),
                Err(_) => drop(conn),
            }
        }
    }
}

fn query(
    c: &mut Connection,
    db: &str,
    caps: Caps,
    sql: &str,
    params: &[Value],
) -> Result<String, Error> {
    let mut stmt = c.prepare_cached(sql).map_err(|e| error(db, e))?;
    bind(&mut stmt, db, params)?;
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut out = RowsJson::new(db, caps, columns.iter().map(String::as_str));
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(|e| error(db, e))? {
        out.row()?;
        for i in 0..columns.len() {
            let value = row.get_ref(i).map_err(|e| error(db, e))?;
            out.cell(cell(value, db)?)?;
        }
        out.end_row()?;
    }
    Ok(out.finish())
}

fn cell<'a>(value: ValueRef<'a>, db: &str) -> Result<Cell<'a>, Error> {
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Float(f),
        ValueRef::Text(bytes) => Cell::Text(std::str::from_utf8(bytes).map_err(|_| {
            Error::Invalid(format!(
                "database `{db}`: a text value is not UTF-8; select it as a blob (`CAST(x AS BLOB)`)"
            ))
        })?),
        ValueRef::Blob(bytes) => Cell::Bytes(bytes),
    })
}

fn execute(c: &mut Connection, db: &str, sql: &str, params: &[Value]) -> Result<u64, Error> {
    let mut stmt = c.prepare_cached(sql).map_err(|e| error(db, e))?;
    bind(&mut stmt, db, params)?;
    stmt.raw_execute().map_err(|e| error(db, e))?;
    Ok(c.changes())
}

fn batch(c: &mut Connection, db: &str, statements: &[Statement]) -> Result<Vec<u64>, Error> {
    // IMMEDIATE: take the write lock first, so the batch cannot fail halfway
    // for a lock another writer took meanwhile.
    c.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| error(db, e))?;
    let mut counts = Vec::with_capacity(statements.len());
    for (i, s) in statements.iter().enumerate() {
        match execute(c, db, &s.sql, &s.params) {
            Ok(n) => counts.push(n),
            Err(e) => {
                // A failed rollback leaves the connection in a transaction:
                // the pool then closes it rather than reusing it.
                let _ = c.execute_batch("ROLLBACK");
                return Err(super::at_statement(e, i));
            }
        }
    }
    c.execute_batch("COMMIT").map_err(|e| error(db, e))?;
    Ok(counts)
}

/// Binds `params` in order: `?` takes the next, `?N` and `$N` (as
/// PostgreSQL numbers them, so one SQL text serves both) take the Nth.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, db: &str, params: &[Value]) -> Result<(), Error> {
    // SQLite numbers a named parameter (`$2`) by where it first appears;
    // map each of its slots to the value its name asks for.
    let slots: Vec<usize> = (1..=stmt.parameter_count())
        .map(|slot| {
            stmt.parameter_name(slot)
                .and_then(|name| name.strip_prefix(['$', '?']))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .map_or(slot - 1, |n| n - 1)
        })
        .collect();
    let expected = slots.iter().map(|&i| i + 1).max().unwrap_or(0);
    if expected != params.len() {
        return Err(Error::Invalid(format!(
            "database `{db}`: the statement takes {expected} parameters; {} given",
            params.len()
        )));
    }
    for (slot, &i) in slots.iter().enumerate() {
        let slot = slot + 1;
        let bound = match &params[i] {
            Value::Null => stmt.raw_bind_parameter(slot, rusqlite::types::Null),
            Value::Boolean(b) => stmt.raw_bind_parameter(slot, *b),
            Value::Integer(n) => stmt.raw_bind_parameter(slot, *n),
            Value::Real(f) => stmt.raw_bind_parameter(slot, *f),
            Value::Text(t) => stmt.raw_bind_parameter(slot, t.as_str()),
            Value::Blob(b) => stmt.raw_bind_parameter(slot, b.as_slice()),
        };
        bound.map_err(|e| error(db, e))?;
    }
    Ok(())
}

/// What a SQLite error means to the step.
fn error(db: &str, e: rusqlite::Error) -> Error {
    let message = format!("database `{db}`: {e}");
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked => Error::Rejected(message),
            ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::OperationInterrupted => Error::Unavailable(message),
            _ => Error::Invalid(message),
        },
        rusqlite::Error::ExecuteReturnedResults => Error::Invalid(format!(
            "database `{db}`: the statement returns rows: run it with `query`"
        )),
        _ => Error::Invalid(message),
    }
}
