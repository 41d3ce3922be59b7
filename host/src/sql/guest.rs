//! The WIT `sql` interface, as a call's guest sees it: every use checks the
//! call's grants, bounds what the step sends, and runs under its deadline.
//! A transaction is a resource of the call's table: dropped, or left open
//! when the call ends, it is rolled back.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::{Databases, Tx, caps};
use crate::printable::printable;
use crate::runtime::bindings::flowhost::step::sql::{self, Error, Statement, Transaction, Value};
use crate::runtime::state::StepState;

/// What one call holds of the `sql` interface.
#[derive(Debug, Default)]
pub(crate) struct CallSql {
    /// Transactions begun and not yet finished.
    open: usize,
}

/// A transaction in the call's resource table (the generated `Transaction`
/// type is only a name; this is what its handle leads to).
struct Handle {
    db: String,
    /// `None` while one of its statements runs, and once finished.
    tx: Option<Tx>,
    /// `committed` or `rolled back` once finished.
    finished: Option<&'static str>,
}

impl StepState {
    /// The database `name`, if this call was granted it and it exists; a
    /// denial is logged and answered in the same words either way.
    fn database(&self, name: &str) -> Result<(Arc<Databases>, String), Error> {
        let granted = self.grants.sql.iter().any(|g| g == name);
        let found = self
            .services
            .databases
            .as_ref()
            .filter(|dbs| dbs.get(name).is_some());
        let why = match (granted, found) {
            (true, Some(dbs)) => return Ok((dbs.clone(), name.to_string())),
            (false, _) => "it is not in the step's `allow: {sql: [...]}`".to_string(),
            (true, None) => format!(
                "the host declares no such database (`[databases.{}]` in flowhost.toml)",
                printable(name)
            ),
        };
        let step = &self.ctx.step_id;
        let shown = printable(name);
        tracing::warn!(target: "flowhost::sandbox", step = %step, database = %shown, "denied SQL: {why}");
        Err(Error::Denied(format!(
            "step `{step}` may not use database `{shown}`: {why}"
        )))
    }

    fn handle(&mut self, tx: &Resource<Transaction>) -> Result<&mut Handle, Error> {
        let own = Resource::<Handle>::new_own(tx.rep());
        self.table
            .get_mut(&own)
            .map_err(|_| Error::Unavailable("no such transaction".into()))
    }

    /// Takes the open transaction out of its handle for one use.
    fn take_tx(&mut self, tx: &Resource<Transaction>) -> Result<(String, Tx), Error> {
        let handle = self.handle(tx)?;
        match (handle.tx.take(), handle.finished) {
            (Some(t), _) => Ok((handle.db.clone(), t)),
            (None, Some(how)) => Err(Error::Unavailable(format!(
                "database `{}`: the transaction was already {how}",
                handle.db
            ))),
            (None, None) => Err(Error::Unavailable(format!(
                "database `{}`: the transaction is in use",
                handle.db
            ))),
        }
    }

    /// Marks the handle's transaction finished (committed or rolled back).
    fn finish(&mut self, tx: &Resource<Transaction>, how: &'static str) {
        if let Ok(handle) = self.handle(tx) {
            handle.finished = Some(how);
        }
        self.sql.open = self.sql.open.saturating_sub(1);
    }
}

impl sql::Host for StepState {
    async fn query(
        &mut self,
        db: String,
        sql: String,
        params: Vec<Value>,
    ) -> Result<String, Error> {
        let (dbs, name) = self.database(&db)?;
        caps::statement(&name, &sql, &params)?;
        let database = dbs.get(&name).ok_or_else(|| gone(&name))?;
        database.query(sql, params, self.deadline).await
    }

    async fn execute(&mut self, db: String, sql: String, params: Vec<Value>) -> Result<u64, Error> {
        let (dbs, name) = self.database(&db)?;
        caps::statement(&name, &sql, &params)?;
        let database = dbs.get(&name).ok_or_else(|| gone(&name))?;
        database.execute(sql, params, self.deadline).await
    }

    async fn batch(&mut self, db: String, statements: Vec<Statement>) -> Result<Vec<u64>, Error> {
        let (dbs, name) = self.database(&db)?;
        caps::batch(&name, &statements)?;
        let database = dbs.get(&name).ok_or_else(|| gone(&name))?;
        database.batch(statements, self.deadline).await
    }

    async fn begin(&mut self, db: String) -> Result<Resource<Transaction>, Error> {
        let (dbs, name) = self.database(&db)?;
        if self.sql.open >= caps::MAX_OPEN_TRANSACTIONS {
            return Err(Error::Invalid(format!(
                "database `{name}`: a step may hold {} transactions open at once; commit or roll one back first",
                caps::MAX_OPEN_TRANSACTIONS
            )));
        }
        let database = dbs.get(&name).ok_or_else(|| gone(&name))?;
        let tx = database.begin(self.deadline).await?;
        let handle = Handle {
            db: name.clone(),
            tx: Some(tx),
            finished: None,
        };
        // Pushed at once: from here, the call's end rolls it back.
        let pushed = self
            .table
            .push(handle)
            .map_err(|e| Error::Unavailable(format!("database `{name}`: {e}")))?;
        self.sql.open += 1;
        Ok(Resource::new_own(pushed.rep()))
    }
}

fn gone(name: &str) -> Error {
    Error::Unavailable(format!("database `{name}` is not open"))
}

impl sql::HostTransaction for StepState {
    async fn query(
        &mut self,
        tx: Resource<Transaction>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<String, Error> {
        let (db, mut t) = self.take_tx(&tx)?;
        let result = match caps::statement(&db, &sql, &params) {
            Ok(()) => t.query(sql, params, self.deadline).await,
            Err(e) => Err(e),
        };
        self.handle(&tx)?.tx = Some(t);
        result
    }

    async fn execute(
        &mut self,
        tx: Resource<Transaction>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<u64, Error> {
        let (db, mut t) = self.take_tx(&tx)?;
        let result = match caps::statement(&db, &sql, &params) {
            Ok(()) => t.execute(sql, params, self.deadline).await,
            Err(e) => Err(e),
        };
        self.handle(&tx)?.tx = Some(t);
        result
    }

    async fn commit(&mut self, tx: Resource<Transaction>) -> Result<(), Error> {
        let (_, t) = self.take_tx(&tx)?;
        // Finished either way: a failed commit is rolled back.
        let result = t.commit(self.deadline).await;
        self.finish(
            &tx,
            if result.is_ok() {
                "committed"
            } else {
                "rolled back"
            },
        );
        result
    }

    async fn rollback(&mut self, tx: Resource<Transaction>) -> Result<(), Error> {
        let (_, t) = self.take_tx(&tx)?;
        let result = t.rollback(self.deadline).await;
        self.finish(&tx, "rolled back");
        result
    }

    async fn drop(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<()> {
        let handle = self.table.delete(Resource::<Handle>::new_own(tx.rep()))?;
        if handle.finished.is_none() {
            self.sql.open = self.sql.open.saturating_sub(1);
        }
        // Dropping an open transaction rolls it back.
        drop(handle);
        Ok(())
    }
}
