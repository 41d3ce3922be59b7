//! SQL databases the operator declared (`[databases.NAME]` in
//! `flowhost.toml`) and the flow granted the step (`allow: {sql: [NAME]}`).
//!
//! ```no_run
//! use flowhost_sdk::sql::{self, Database};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Order { id: i64, total: f64 }
//!
//! # fn demo() -> Result<(), flowhost_sdk::StepError> {
//! let db = Database::new("orders");
//! db.execute("insert into orders (id, total) values ($1, $2)", &sql::params![7, 12.5])?;
//! let rows: Vec<Order> = db.query("select id, total from orders where id = $1", &sql::params![7])?;
//! let tx = db.transaction()?;
//! tx.execute("update orders set total = total + 1 where id = $1", &sql::params![7])?;
//! tx.commit()?; // dropped without commit: rolled back
//! # Ok(()) }
//! ```
//!
//! Parameters are always bound (`$1`... on SQLite and PostgreSQL alike),
//! never pasted into the SQL. Rows arrive as JSON objects keyed by column
//! name and are deserialised into your type.

use serde::de::DeserializeOwned;

use crate::StepError;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

macro_rules! value_from {
    ($($t:ty => $v:ident $(as $as:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self { Value::$v((x $(as $as)?).into()) }
        }
    )*};
}
value_from!(bool => Boolean, i8 => Integer as i64, i16 => Integer as i64, i32 => Integer as i64,
    i64 => Integer, u8 => Integer as i64, u16 => Integer as i64, u32 => Integer as i64,
    f32 => Real as f64, f64 => Real, String => Text, &str => Text, &String => Text,
    Vec<u8> => Blob, &[u8] => Blob);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Self {
        x.map_or(Value::Null, Into::into)
    }
}

/// Builds a parameter array: `&sql::params![7, "ada", None::<i64>]`.
#[macro_export]
macro_rules! sql_params {
    ($($x:expr),* $(,)?) => { [$($crate::sql::Value::from($x)),*] };
}
pub use crate::sql_params as params;

/// Why a database call failed. Each message names the database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlError {
    /// The step was not granted the database, or there is no such database.
    Denied(String),
    /// The SQL or its parameters were refused.
    Invalid(String),
    /// A constraint or a conflicting transaction refused the change.
    Rejected(String),
    /// The result passed the database's row or byte cap.
    TooLarge(String),
    /// The database could not be reached; retrying may help.
    Unavailable(String),
    /// The rows did not fit the type asked for.
    Decode(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, m) = match self {
            SqlError::Denied(m) => ("denied", m),
            SqlError::Invalid(m) => ("invalid", m),
            SqlError::Rejected(m) => ("rejected", m),
            SqlError::TooLarge(m) => ("too large", m),
            SqlError::Unavailable(m) => ("unavailable", m),
            SqlError::Decode(m) => ("rows do not fit", m),
        };
        write!(f, "sql {what}: {m}")
    }
}

impl std::error::Error for SqlError {}

/// `unavailable` may pass on a retry (`transient`); a conflict (`rejected`)
/// is `transient` too, as a retry runs against new data; the rest are
/// `permanent`.
impl From<SqlError> for StepError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unavailable(_) | SqlError::Rejected(_) => StepError::transient(e.to_string()),
            _ => StepError::permanent(e.to_string()),
        }
    }
}

/// A database, by the name the flow grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    name: String,
}

impl Database {
    /// The database `name` (`allow: {sql: [name]}`). Nothing is checked until the first call.
    pub fn new(name: impl Into<String>) -> Self {
        Database { name: name.into() }
    }

    /// Runs a query; each row is deserialised into `T` from a JSON object keyed by column name.
    pub fn query<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<T>, SqlError> {
        decode(&imp::query(&self.name, sql, params)?)
    }

    /// Runs a query and returns its rows as JSON text (an array of objects).
    pub fn query_json(&self, sql: &str, params: &[Value]) -> Result<String, SqlError> {
        imp::query(&self.name, sql, params)
    }

    /// Runs a statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        imp::execute(&self.name, sql, params)
    }

    /// Runs the statements in one transaction, all or nothing; returns each one's changed-row count.
    pub fn batch(&self, statements: &[(&str, &[Value])]) -> Result<Vec<u64>, SqlError> {
        imp::batch(&self.name, statements)
    }

    /// Opens a transaction. It is rolled back unless [`Transaction::commit`] succeeds.
    pub fn transaction(&self) -> Result<Transaction, SqlError> {
        imp::begin(&self.name).map(|inner| Transaction { inner })
    }
}

/// An open transaction on one pooled connection; rolled back when dropped
/// uncommitted (also when the step's call ends).
#[derive(Debug)]
pub struct Transaction {
    inner: imp::Tx,
}

impl Transaction {
    /// Like [`Database::query`], inside the transaction.
    pub fn query<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<T>, SqlError> {
        decode(&self.inner.query(sql, params)?)
    }

    /// Like [`Database::execute`], inside the transaction.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.inner.execute(sql, params)
    }

    /// Makes the changes visible.
    pub fn commit(self) -> Result<(), SqlError> {
        self.inner.commit()
    }

    /// Discards the changes (as dropping the transaction does, but says whether it worked).
    pub fn rollback(self) -> Result<(), SqlError> {
        self.inner.rollback()
    }
}

fn decode<T: DeserializeOwned>(json: &str) -> Result<Vec<T>, SqlError> {
    serde_json::from_str(json).map_err(|e| SqlError::Decode(e.to_string()))
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{SqlError, Value};
    use crate::bindings::flowhost::step::sql as wit;

    fn to_wit(params: &[Value]) -> Vec<wit::Value> {
        params
            .iter()
            .map(|v| match v {
                Value::Null => wit::Value::Null,
                Value::Boolean(b) => wit::Value::Boolean(*b),
                Value::Integer(i) => wit::Value::Integer(*i),
                Value::Real(r) => wit::Value::Real(*r),
                Value::Text(t) => wit::Value::Text(t.clone()),
                Value::Blob(b) => wit::Value::Blob(b.clone()),
            })
            .collect()
    }

    fn from_wit(e: wit::Error) -> SqlError {
        match e {
            wit::Error::Denied(m) => SqlError::Denied(m),
            wit::Error::Invalid(m) => SqlError::Invalid(m),
            wit::Error::Rejected(m) => SqlError::Rejected(m),
            wit::Error::TooLarge(m) => SqlError::TooLarge(m),
            wit::Error::Unavailable(m) => SqlError::Unavailable(m),
        }
    }

    pub(super) fn query(db: &str, sql: &str, params: &[Value]) -> Result<String, SqlError> {
        wit::query(db, sql, &to_wit(params)).map_err(from_wit)
    }

    pub(super) fn execute(db: &str, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        wit::execute(db, sql, &to_wit(params)).map_err(from_wit)
    }

    pub(super) fn batch(db: &str, statements: &[(&str, &[Value])]) -> Result<Vec<u64>, SqlError> {
        let statements: Vec<wit::Statement> = statements
            .iter()
            .map(|(sql, params)| wit::Statement {
                sql: sql.to_string(),
                params: to_wit(params),
            })
            .collect();
        wit::batch(db, &statements).map_err(from_wit)
    }

    pub(super) fn begin(db: &str) -> Result<Tx, SqlError> {
        wit::begin(db).map(Tx).map_err(from_wit)
    }

    #[derive(Debug)]
    pub(super) struct Tx(wit::Transaction);

    impl Tx {
        pub(super) fn query(&self, sql: &str, params: &[Value]) -> Result<String, SqlError> {
            self.0.query(sql, &to_wit(params)).map_err(from_wit)
        }
        pub(super) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
            self.0.execute(sql, &to_wit(params)).map_err(from_wit)
        }
        pub(super) fn commit(self) -> Result<(), SqlError> {
            self.0.commit().map_err(from_wit)
        }
        pub(super) fn rollback(self) -> Result<(), SqlError> {
            self.0.rollback().map_err(from_wit)
        }
    }
}

/// Outside WebAssembly (native unit tests) there is no host: every call is
/// `unavailable`, so a step's own logic can still be tested around it.
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{SqlError, Value};

    fn none(db: &str) -> SqlError {
        SqlError::Unavailable(format!("database '{db}': no host outside WebAssembly"))
    }

    pub(super) fn query(db: &str, _: &str, _: &[Value]) -> Result<String, SqlError> {
        Err(none(db))
    }
    pub(super) fn execute(db: &str, _: &str, _: &[Value]) -> Result<u64, SqlError> {
        Err(none(db))
    }
    pub(super) fn batch(db: &str, _: &[(&str, &[Value])]) -> Result<Vec<u64>, SqlError> {
        Err(none(db))
    }
    pub(super) fn begin(db: &str) -> Result<Tx, SqlError> {
        Err(none(db))
    }

    #[derive(Debug)]
    pub(super) enum Tx {}

    impl Tx {
        pub(super) fn query(&self, _: &str, _: &[Value]) -> Result<String, SqlError> {
            match *self {}
        }
        pub(super) fn execute(&self, _: &str, _: &[Value]) -> Result<u64, SqlError> {
            match *self {}
        }
        pub(super) fn commit(self) -> Result<(), SqlError> {
            match self {}
        }
        pub(super) fn rollback(self) -> Result<(), SqlError> {
            match self {}
        }
    }
}
