//! Reads: a small pool of read-only connections used off the runtime
//! (`spawn_blocking`). In WAL mode they never wait for the writer, and see
//! every write whose reply was sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, ToSql};
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use super::ops::PruneBound;
use crate::executor::{RunRecord, RunStatus};
use crate::store::{
    Cursor, ListQuery, MAX_PAGE, NewRun, RunPage, StepEntry, StoreError, StoredRun, Unfinished,
    resolve_inputs, unix_ms,
};

/// Reads at once at most (and so read connections).
const READERS: usize = 8;
/// Idle read connections kept.
const IDLE: usize = 4;

/// The read connections of one store.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    name: String,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, first: Option<Connection>) -> Self {
        Readers {
            name: super::open::shown(&path),
            path,
            permits: Arc::new(Semaphore::new(READERS)),
            idle: Mutex::new(first.into_iter().collect()),
        }
    }

    /// Runs `f` on a read connection, off the runtime.
    pub(super) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.clone();
        let permit = self.permits.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.take()?;
            let result = f(&Reader {
                conn: &conn,
                name: &readers.name,
            });
            readers.give(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("{}: a read failed: {e}", self.name)))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => super::open::read_connection(&self.path),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }
}

/// Finished runs kept.
pub(super) fn count_finished(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM runs WHERE finished_ms IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

/// A read connection and the file's name for errors.
pub(super) struct Reader<'a> {
    conn: &'a Connection,
    name: &'a str,
}

use crate::store::rows::{RUN_COLUMNS, RunColumns};

impl Reader<'_> {
    fn sql(&self, e: rusqlite::Error) -> StoreError {
        super::open::sqlite_error(self.name, e)
    }

    /// A row that does not decode: the file was changed by hand or damaged.
    fn damaged(&self, run_id: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!(
            "{}: run {run_id}: its stored {what} cannot be read: {e}",
            self.name
        ))
    }

    /// Runs `f` in one read transaction: what it reads is one snapshot.
    fn snapshot<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        let result = f();
        drop(tx);
        result
    }

    fn raw(&self, run_id: &str, what: &str, text: String) -> Result<Box<RawValue>, StoreError> {
        RawValue::from_string(text).map_err(|e| self.damaged(run_id, what, e))
    }

    /// A run as accepted, and when it started, from a row of [`RUN_COLUMNS`].
    fn new_run(&self, row: &Row<'_>) -> Result<(NewRun, Option<i64>), StoreError> {
        let get = |e| self.sql(e);
        RunColumns {
            run_id: row.get(0).map_err(get)?,
            flow: row.get(1).map_err(get)?,
            flow_version: row.get(2).map_err(get)?,
            plugins: row.get(3).map_err(get)?,
            input: row.get(4).map_err(get)?,
            accepted_ms: row.get(5).map_err(get)?,
            idempotency_key: row.get(6).map_err(get)?,
            derived_from: row.get(7).map_err(get)?,
            hop: row.get(8).map_err(get)?,
            started_ms: row.get(9).map_err(get)?,
        }
        .decode(self.name)
    }

    /// A journal entry from its columns.
    fn entry(
        &self,
        run_id: &str,
        path: String,
        entry: &str,
        output: Option<String>,
    ) -> Result<StepEntry, StoreError> {
        let mut entry: StepEntry =
            serde_json::from_str(entry).map_err(|e| self.damaged(run_id, "journal", e))?;
        entry.path = path;
        entry.output = output
            .map(|o| self.raw(run_id, "step output", o))
            .transpose()?;
        Ok(entry)
    }

    /// The journal of one run, in write order.
    fn steps(&self, run_id: &str) -> Result<Vec<StepEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, entry, output FROM steps WHERE run_id = ?1 ORDER BY id")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })
            .map_err(|e| self.sql(e))?;
        rows.map(|r| {
            let (path, entry, output) = r.map_err(|e| self.sql(e))?;
            self.entry(run_id, path, &entry, output)
        })
        .collect()
    }

    pub(super) fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.snapshot(|| {
            let mut journals: HashMap<String, Vec<StepEntry>> = HashMap::new();
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT s.run_id, s.path, s.entry, s.output FROM steps s
                     JOIN runs r ON r.run_id = s.run_id
                     WHERE r.finished_ms IS NULL ORDER BY s.id",
                )
                .map_err(|e| self.sql(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
            while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
                let get = |e| self.sql(e);
                let run_id: String = row.get(0).map_err(get)?;
                let entry: String = row.get(2).map_err(get)?;
                let entry = self.entry(
                    &run_id,
                    row.get(1).map_err(get)?,
                    &entry,
                    row.get(3).map_err(get)?,
                )?;
                journals.entry(run_id).or_default().push(entry);
            }
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE finished_ms IS NULL
                     ORDER BY accepted_ms, run_id"
                ))
                .map_err(|e| self.sql(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
            let mut unfinished = Vec::new();
            while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
                let (run, started_ms) = self.new_run(row)?;
                let mut steps = journals.remove(&run.run_id).unwrap_or_default();
                resolve_inputs(&run.input, &mut steps);
                unfinished.push(Unfinished {
                    steps,
                    cancel_requested: false,
                    started_at: started_ms.map(unix_ms::to),
                    run,
                });
            }
            Ok(unfinished)
        })
    }

    pub(super) fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        type Columns = (String, String, i64, Option<String>, Option<String>);
        let row: Option<Columns> = self
            .conn
            .prepare_cached(
                "SELECT flow, status, accepted_ms, record, output FROM runs WHERE run_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([run_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
            })
            .map_err(|e| self.sql(e))?;
        let Some((flow, status, accepted_ms, record, output)) = row else {
            return Ok(None);
        };
        let record = match record {
            None => None,
            Some(json) => {
                let mut record: RunRecord =
                    serde_json::from_str(&json).map_err(|e| self.damaged(run_id, "record", e))?;
                record.output = output.map(|o| self.raw(run_id, "output", o)).transpose()?;
                Some(Arc::new(record))
            }
        };
        Ok(Some(StoredRun {
            run_id: run_id.to_string(),
            flow,
            status: self.status(run_id, &status)?,
            accepted_at: unix_ms::to(accepted_ms),
            record,
        }))
    }

    pub(super) fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        self.snapshot(|| {
            let mut stmt = self
                .conn
                .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))
                .map_err(|e| self.sql(e))?;
            let mut rows = stmt.query([run_id]).map_err(|e| self.sql(e))?;
            let Some(row) = rows.next().map_err(|e| self.sql(e))? else {
                return Ok(None);
            };
            let (run, _) = self.new_run(row)?;
            let mut steps = self.steps(run_id)?;
            resolve_inputs(&run.input, &mut steps);
            Ok(Some((run, steps)))
        })
    }

    pub(super) fn list(&self, query: &ListQuery) -> Result<RunPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut sql = String::from("SELECT run_id, flow, status, accepted_ms FROM runs WHERE 1");
        let status = query.status.map(RunStatus::as_str);
        let mut args: Vec<&dyn ToSql> = Vec::new();
        if let Some(flow) = &query.flow {
            args.push(flow);
            sql.push_str(&format!(" AND flow = ?{}", args.len()));
        }
        if let Some(status) = &status {
            args.push(status);
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(cursor) = &query.cursor {
            args.push(&cursor.accepted_ms);
            args.push(&cursor.run_id);
            let n = args.len();
            sql.push_str(&format!(" AND (accepted_ms, run_id) < (?{}, ?{n})", n - 1));
        }
        // One more than asked: whether there is a next page.
        let fetch = limit as i64 + 1;
        args.push(&fetch);
        sql.push_str(&format!(
            " ORDER BY accepted_ms DESC, run_id DESC LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(&*args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut runs = Vec::new();
        let mut more = false;
        for row in rows {
            let (run_id, flow, status, accepted_ms) = row.map_err(|e| self.sql(e))?;
            if runs.len() == limit {
                more = true;
                break;
            }
            runs.push(StoredRun {
                status: self.status(&run_id, &status)?,
                accepted_at: unix_ms::to(accepted_ms),
                run_id,
                flow,
                record: None,
            });
        }
        let next = runs.last().filter(|_| more).map(|last: &StoredRun| Cursor {
            accepted_ms: unix_ms::from(last.accepted_at),
            run_id: last.run_id.clone(),
        });
        Ok(RunPage { runs, next })
    }

    pub(super) fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT bytes FROM blobs WHERE hash = ?1")
            .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
            .map_err(|e| self.sql(e))
    }

    /// The position of the newest finished run beyond the `keep` newest,
    /// if there are more than `keep`.
    pub(super) fn prune_bound(&self, keep: usize) -> Result<Option<PruneBound>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT finished_ms, rowid FROM runs WHERE finished_ms IS NOT NULL
                 ORDER BY finished_ms DESC, rowid DESC LIMIT 1 OFFSET ?1",
            )
            .and_then(|mut s| {
                s.query_row([i64::try_from(keep).unwrap_or(i64::MAX)], |r| {
                    Ok(PruneBound {
                        finished_ms: r.get(0)?,
                        rowid: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.sql(e))
    }

    fn status(&self, run_id: &str, word: &str) -> Result<RunStatus, StoreError> {
        word.parse()
            .map_err(|why: String| self.damaged(run_id, "status", format!("`{word}`: {why}")))
    }
}
