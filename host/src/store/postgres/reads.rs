//! Reads, each on a pooled connection: runs, listings, the journal, blobs.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use serde_json::value::RawValue;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::open::{pg_error, pool_error};
use crate::executor::{RunRecord, RunStatus};
use crate::store::{
    Cursor, ListQuery, MAX_PAGE, NewRun, RunPage, StepEntry, StoreError, StoredRun, Unfinished,
    resolve_inputs, unix_ms,
};

pub(super) use crate::store::rows::RUN_COLUMNS;
use crate::store::rows::{RUN_COLUMN_COUNT, RunColumns};

/// The reads of one store.
#[derive(Debug, Clone)]
pub(super) struct Reads {
    pub(super) pool: Pool,
    /// The database, for messages.
    pub(super) what: String,
}

impl Reads {
    pub(super) fn sql(&self, e: tokio_postgres::Error) -> StoreError {
        pg_error(&self.what, e)
    }

    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| pool_error(&self.what, e))
    }

    /// A row that does not decode: the database was changed by hand.
    fn damaged(&self, run_id: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!(
            "{}: run {run_id}: its stored {what} cannot be read: {e}",
            self.what
        ))
    }

    fn raw(&self, run_id: &str, what: &str, text: String) -> Result<Box<RawValue>, StoreError> {
        RawValue::from_string(text).map_err(|e| self.damaged(run_id, what, e))
    }

    /// A run as accepted, and when it started, from a row whose first
    /// columns are [`RUN_COLUMNS`].
    pub(super) fn new_run(&self, row: &Row) -> Result<(NewRun, Option<i64>), StoreError> {
        let get = |e| self.sql(e);
        RunColumns {
            run_id: row.try_get(0).map_err(get)?,
            flow: row.try_get(1).map_err(get)?,
            flow_version: row.try_get(2).map_err(get)?,
            plugins: row.try_get(3).map_err(get)?,
            input: row.try_get(4).map_err(get)?,
            accepted_ms: row.try_get(5).map_err(get)?,
            idempotency_key: row.try_get(6).map_err(get)?,
            derived_from: row.try_get(7).map_err(get)?,
            hop: row.try_get(8).map_err(get)?,
            started_ms: row.try_get(9).map_err(get)?,
        }
        .decode(&self.what)
    }

    /// Journals from rows of (run_id, path, entry, output), in row order.
    pub(super) fn journals(
        &self,
        rows: &[Row],
    ) -> Result<HashMap<String, Vec<StepEntry>>, StoreError> {
        let mut journals: HashMap<String, Vec<StepEntry>> = HashMap::new();
        for row in rows {
            let get = |e| self.sql(e);
            let run_id: String = row.try_get(0).map_err(get)?;
            let entry: &str = row.try_get(2).map_err(get)?;
            let mut entry: StepEntry =
                serde_json::from_str(entry).map_err(|e| self.damaged(&run_id, "journal", e))?;
            entry.path = row.try_get(1).map_err(get)?;
            entry.output = row
                .try_get::<_, Option<String>>(3)
                .map_err(get)?
                .map(|o| self.raw(&run_id, "step output", o))
                .transpose()?;
            journals.entry(run_id).or_default().push(entry);
        }
        Ok(journals)
    }

    /// A read-only transaction whose reads are one snapshot.
    async fn snapshot<'c>(
        &self,
        client: &'c mut Object,
    ) -> Result<deadpool_postgres::Transaction<'c>, StoreError> {
        client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.sql(e))
    }

    /// Every unfinished run with its journal, oldest first, as one snapshot.
    pub(super) async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        let mut client = self.client().await?;
        let tx = self.snapshot(&mut client).await?;
        let runs = tx
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS}, cancel_requested FROM runs WHERE finished_at IS NULL
                     ORDER BY accepted_ms, run_id"
                ),
                &[],
            )
            .await
            .map_err(|e| self.sql(e))?;
        let steps = tx
            .query(
                "SELECT j.run_id, j.path, j.entry, j.output FROM journal j
                 JOIN runs r ON r.run_id = j.run_id
                 WHERE r.finished_at IS NULL ORDER BY j.seq",
                &[],
            )
            .await
            .map_err(|e| self.sql(e))?;
        tx.commit().await.map_err(|e| self.sql(e))?;
        self.assemble(&runs, &steps)
    }

    /// Unfinished runs from rows of [`RUN_COLUMNS`] then `cancel_requested`,
    /// with their journals' rows.
    pub(super) fn assemble(
        &self,
        runs: &[Row],
        steps: &[Row],
    ) -> Result<Vec<Unfinished>, StoreError> {
        let mut journals = self.journals(steps)?;
        runs.iter()
            .map(|row| {
                let (run, started_ms) = self.new_run(row)?;
                let mut steps = journals.remove(&run.run_id).unwrap_or_default();
                resolve_inputs(&run.input, &mut steps);
                Ok(Unfinished {
                    steps,
                    cancel_requested: row.try_get(RUN_COLUMN_COUNT).map_err(|e| self.sql(e))?,
                    started_at: started_ms.map(unix_ms::to),
                    run,
                })
            })
            .collect()
    }

    pub(super) async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT flow, status, accepted_ms, record, output FROM runs WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .map_err(|e| self.sql(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let get = |e| self.sql(e);
        let record = match row.try_get::<_, Option<String>>(3).map_err(get)? {
            None => None,
            Some(json) => {
                let mut record: RunRecord =
                    serde_json::from_str(&json).map_err(|e| self.damaged(run_id, "record", e))?;
                record.output = row
                    .try_get::<_, Option<String>>(4)
                    .map_err(get)?
                    .map(|o| self.raw(run_id, "output", o))
                    .transpose()?;
                Some(Arc::new(record))
            }
        };
        Ok(Some(StoredRun {
            run_id: run_id.to_string(),
            flow: row.try_get(0).map_err(get)?,
            status: self.status(run_id, row.try_get(1).map_err(get)?)?,
            accepted_at: unix_ms::to(row.try_get(2).map_err(get)?),
            record,
        }))
    }

    pub(super) async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        let mut client = self.client().await?;
        let tx = self.snapshot(&mut client).await?;
        let row = tx
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
                &[&run_id],
            )
            .await
            .map_err(|e| self.sql(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let steps = tx
            .query(
                "SELECT run_id, path, entry, output FROM journal WHERE run_id = $1 ORDER BY seq",
                &[&run_id],
            )
            .await
            .map_err(|e| self.sql(e))?;
        tx.commit().await.map_err(|e| self.sql(e))?;
        let (run, _) = self.new_run(&row)?;
        let mut steps = self.journals(&steps)?.remove(run_id).unwrap_or_default();
        resolve_inputs(&run.input, &mut steps);
        Ok(Some((run, steps)))
    }

    /// A page newest first, by keyset on (accepted_ms, run_id).
    pub(super) async fn list(&self, query: &ListQuery) -> Result<RunPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut sql = String::from("SELECT run_id, flow, status, accepted_ms FROM runs WHERE true");
        let status = query.status.map(RunStatus::as_str);
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(flow) = &query.flow {
            args.push(flow);
            sql.push_str(&format!(" AND flow = ${}", args.len()));
        }
        if let Some(status) = &status {
            args.push(status);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(cursor) = &query.cursor {
            args.push(&cursor.accepted_ms);
            args.push(&cursor.run_id);
            let n = args.len();
            sql.push_str(&format!(" AND (accepted_ms, run_id) < (${}, ${n})", n - 1));
        }
        // One more than asked: whether there is a next page.
        let fetch = limit as i64 + 1;
        args.push(&fetch);
        sql.push_str(&format!(
            " ORDER BY accepted_ms DESC, run_id DESC LIMIT ${}",
            args.len()
        ));
        let client = self.client().await?;
        let rows = client.query(&sql, &args).await.map_err(|e| self.sql(e))?;
        let mut runs = Vec::new();
        let get = |e| self.sql(e);
        for row in rows.iter().take(limit) {
            let run_id: String = row.try_get(0).map_err(get)?;
            runs.push(StoredRun {
                status: self.status(&run_id, row.try_get(2).map_err(get)?)?,
                accepted_at: unix_ms::to(row.try_get(3).map_err(get)?),
                flow: row.try_get(1).map_err(get)?,
                run_id,
                record: None,
            });
        }
        let next = runs
            .last()
            .filter(|_| rows.len() > limit)
            .map(|last| Cursor {
                accepted_ms: unix_ms::from(last.accepted_at),
                run_id: last.run_id.clone(),
            });
        Ok(RunPage { runs, next })
    }

    pub(super) async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT bytes FROM blobs WHERE hash = $1", &[&hash])
            .await
            .map_err(|e| self.sql(e))?;
        row.map(|r| r.try_get(0).map_err(|e| self.sql(e)))
            .transpose()
    }

    /// (Finished runs kept, the database's size in bytes.)
    pub(super) async fn usage(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM runs WHERE finished_at IS NOT NULL),
                        pg_database_size(current_database())",
                &[],
            )
            .await
            .map_err(|e| self.sql(e))?;
        let finished: i64 = row.try_get(0).map_err(|e| self.sql(e))?;
        let bytes: i64 = row.try_get(1).map_err(|e| self.sql(e))?;
        Ok((finished.max(0) as u64, bytes.max(0) as u64))
    }

    fn status(&self, run_id: &str, word: &str) -> Result<RunStatus, StoreError> {
        word.parse()
            .map_err(|why: String| self.damaged(run_id, "status", format!("`{word}`: {why}")))
    }
}
