//! The WIT `sql` interface, as a call's guest sees it.

use wasmtime::component::Resource;

use crate::runtime::bindings::flowhost::step::sql::{self, Error, Statement, Transaction, Value};
use crate::runtime::state::StepState;

fn todo() -> Error {
    Error::Denied("not built yet".into())
}

impl sql::Host for StepState {
    async fn query(
        &mut self,
        _db: String,
        _sql: String,
        _params: Vec<Value>,
    ) -> Result<String, Error> {
        Err(todo())
    }
    async fn execute(
        &mut self,
        _db: String,
        _sql: String,
        _params: Vec<Value>,
    ) -> Result<u64, Error> {
        Err(todo())
    }
    async fn batch(&mut self, _db: String, _statements: Vec<Statement>) -> Result<Vec<u64>, Error> {
        Err(todo())
    }
    async fn begin(&mut self, _db: String) -> Result<Resource<Transaction>, Error> {
        Err(todo())
    }
}

impl sql::HostTransaction for StepState {
    async fn query(
        &mut self,
        _tx: Resource<Transaction>,
        _sql: String,
        _params: Vec<Value>,
    ) -> Result<String, Error> {
        Err(todo())
    }
    async fn execute(
        &mut self,
        _tx: Resource<Transaction>,
        _sql: String,
        _params: Vec<Value>,
    ) -> Result<u64, Error> {
        Err(todo())
    }
    async fn commit(&mut self, _tx: Resource<Transaction>) -> Result<(), Error> {
        Err(todo())
    }
    async fn rollback(&mut self, _tx: Resource<Transaction>) -> Result<(), Error> {
        Err(todo())
    }
    async fn drop(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<()> {
        self.table.delete(tx)?;
        Ok(())
    }
}
