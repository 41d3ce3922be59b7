//! Bounds on what a step may send: SQL text, parameters, statements in a
//! batch, and transactions open at once in one call.

use super::{Error, Statement, Value};

/// The longest SQL text of one statement.
pub(crate) const MAX_SQL: usize = 64 << 10;
/// The most parameters of one statement.
pub(crate) const MAX_PARAMS: usize = 1000;
/// The most statements of one batch.
pub(crate) const MAX_STATEMENTS: usize = 1000;
/// The most transactions one call may hold open at once.
pub(crate) const MAX_OPEN_TRANSACTIONS: usize = 4;

/// Refuses a statement past its bounds.
pub(crate) fn statement(db: &str, sql: &str, params: &[Value]) -> Result<(), Error> {
    if sql.len() > MAX_SQL {
        return Err(Error::Invalid(format!(
            "database `{db}`: the SQL text has {} bytes; the limit is {MAX_SQL}",
            sql.len()
        )));
    }
    if params.len() > MAX_PARAMS {
        return Err(Error::Invalid(format!(
            "database `{db}`: {} parameters; the limit is {MAX_PARAMS}",
            params.len()
        )));
    }
    Ok(())
}

/// Refuses a batch past its bounds, or any of its statements.
pub(crate) fn batch(db: &str, statements: &[Statement]) -> Result<(), Error> {
    if statements.len() > MAX_STATEMENTS {
        return Err(Error::Invalid(format!(
            "database `{db}`: a batch of {} statements; the limit is {MAX_STATEMENTS}",
            statements.len()
        )));
    }
    statements
        .iter()
        .try_for_each(|s| statement(db, &s.sql, &s.params))
}
