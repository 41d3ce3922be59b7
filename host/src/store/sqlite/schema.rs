//! The store's tables and their versions.
//!
//! A store is marked by its header's application id ([`APP_ID`]) and
//! versioned by `PRAGMA user_version`: version N has run the first N
//! [`MIGRATIONS`]. Opening applies the missing ones in one transaction; a
//! store of a version above [`VERSION`] was written by a newer flowhost and
//! is refused untouched.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::open::sqlite_error;
use crate::store::StoreError;

/// "flow": the header's application id of a flowhost store.
pub(super) const APP_ID: i32 = 0x666c_6f77;

/// Each schema version's changes, in order.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The newest schema version this build knows.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The tables every version has, checked at open.
const TABLES: &[&str] = &["runs", "steps", "blobs"];

/// Runs, their journals, and content-addressed flow and plugin copies.
/// Outputs and inputs are TEXT as they arrived (never re-serialised); a
/// finished run's `record` is its JSON record without the output.
const V1: &str = "
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY NOT NULL,
    flow            TEXT NOT NULL,
    flow_version    TEXT NOT NULL,
    plugins         TEXT NOT NULL,
    input           TEXT NOT NULL,
    accepted_ms     INTEGER NOT NULL,
    started_ms      INTEGER,
    status          TEXT NOT NULL,
    idempotency_key TEXT,
    derived_from    TEXT,
    record          TEXT,
    output          TEXT,
    finished_ms     INTEGER,
    UNIQUE (flow, idempotency_key)
);
CREATE INDEX runs_newest ON runs (accepted_ms DESC, run_id DESC);
CREATE INDEX runs_flow_newest ON runs (flow, accepted_ms DESC, run_id DESC);
CREATE INDEX runs_status_newest ON runs (status, accepted_ms DESC, run_id DESC);
CREATE INDEX runs_unfinished ON runs (accepted_ms, run_id) WHERE finished_ms IS NULL;
CREATE INDEX runs_finished ON runs (finished_ms) WHERE finished_ms IS NOT NULL;

-- The journal: one row per step path, in the order first written (rowid).
CREATE TABLE steps (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    path   TEXT NOT NULL,
    entry  TEXT NOT NULL,
    output TEXT,
    UNIQUE (run_id, path)
);

CREATE TABLE blobs (
    hash   TEXT PRIMARY KEY NOT NULL,
    bytes  BLOB NOT NULL,
    put_ms INTEGER NOT NULL
);
";

/// Version 2: a run's event hop count, so that a resumed run keeps its
/// place in the loop guard.
const V2: &str = "ALTER TABLE runs ADD COLUMN hop INTEGER NOT NULL DEFAULT 0;";

/// Version 3: steps' key-value state; `expires_ms` is Unix milliseconds.
const V3: &str = "
CREATE TABLE kv (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expiring ON kv (expires_ms) WHERE expires_ms IS NOT NULL;
";

/// What an existing file holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// A SQLite database with nothing in it: made a store at open.
    Empty,
    /// A flowhost store of this schema version (at most [`VERSION`]).
    Store(i64),
}

/// Reads, without writing, what the file behind `conn` holds; refuses a
/// database of another program, a newer store and a damaged one.
pub(super) fn inspect(conn: &Connection, name: &str) -> Result<Found, StoreError> {
    let sql = |e| sqlite_error(name, e);
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sql)?;
    let not_a_store = |why: String| StoreError::NotAStore {
        path: name.to_string(),
        why,
    };
    if app_id != APP_ID {
        if app_id == 0 && version == 0 && tables.is_empty() {
            return Ok(Found::Empty);
        }
        let mut listed = tables
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if tables.len() > 5 {
            listed.push_str(", …");
        }
        return Err(not_a_store(if tables.is_empty() {
            format!("a SQLite database of another program (application id {app_id})")
        } else {
            format!("a SQLite database of another program (tables: {listed})")
        }));
    }
    if version > VERSION {
        return Err(StoreError::TooNew {
            path: name.to_string(),
            found: version,
            known: VERSION,
        });
    }
    if version < 1 {
        return Err(not_a_store(
            "a damaged flowhost store: it has no schema version".into(),
        ));
    }
    for table in TABLES {
        if !tables.iter().any(|t| t == table) {
            return Err(not_a_store(format!(
                "a damaged flowhost store: its table `{table}` is missing"
            )));
        }
        // Reads the table's first page: a damaged one shows up now, not
        // in the middle of serving.
        conn.query_row(
            &format!("SELECT 1 FROM {table} NOT INDEXED LIMIT 1"),
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(sql)?;
    }
    Ok(Found::Store(version))
}

/// Prepares a file [`inspect`] found [`Found::Empty`] (or that had no
/// bytes): settings that only a database without tables can take.
pub(super) fn prepare_empty(conn: &Connection, name: &str) -> Result<(), StoreError> {
    // Pruned runs' pages go back to the file system (see `prune`).
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(|e| sqlite_error(name, e))
}

/// Brings the store up to [`VERSION`] in one transaction.
pub(super) fn migrate(conn: &mut Connection, name: &str) -> Result<(), StoreError> {
    let sql = |e| sqlite_error(name, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if version > VERSION {
        return Err(StoreError::TooNew {
            path: name.to_string(),
            found: version,
            known: VERSION,
        });
    }
    if version == VERSION {
        return Ok(());
    }
    for step in &MIGRATIONS[version as usize..] {
        tx.execute_batch(step).map_err(sql)?;
    }
    tx.pragma_update(None, "application_id", APP_ID)
        .map_err(sql)?;
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(sql)?;
    tx.commit().map_err(sql)
}
