//! The tables and their versions. `flowhost_schema` holds the version: N
//! has run the first N [`MIGRATIONS`]. Opening applies the missing ones in
//! one transaction under a session advisory lock, so that servers starting
//! together migrate once; a version above [`VERSION`] was written by a
//! newer flowhost and is refused untouched.
//!
//! # Indexes
//! - Claiming and counting what is queued or held read `runs_unfinished`, a
//!   partial index holding unfinished runs only: its size follows the queue,
//!   not the history (a million finished runs add nothing to it).
//! - Listings read newest first by (accepted_ms, run_id) keyset, through
//!   `runs_newest`, `runs_flow_newest` or `runs_status_newest`: a page costs
//!   its length, never an offset.
//! - Pruning reads `runs_finished` oldest first.

use tokio_postgres::Client;

use super::open::pg_error;
use crate::store::StoreError;

/// Each schema version's changes, in order.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The newest schema version this build knows.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The session advisory lock key held while migrating ("flowhost" in ASCII).
const MIGRATION_LOCK: i64 = 0x666c_6f77_686f_7374;

/// Runs (their claim and lease beside them), their journals, and
/// content-addressed flow and plugin copies. Inputs and outputs are TEXT as
/// they arrived; a finished run's `record` is its JSON record without the
/// output. Ids sort bytewise (`COLLATE "C"`), as the SQLite store's do.
const V1: &str = r#"
CREATE TABLE flowhost_schema (version bigint NOT NULL);
INSERT INTO flowhost_schema VALUES (0);

-- A claim's token: every claim takes a new one, and fenced writes name it.
CREATE SEQUENCE claim_tokens;

CREATE TABLE runs (
    run_id           text COLLATE "C" PRIMARY KEY,
    flow             text COLLATE "C" NOT NULL,
    flow_version     text NOT NULL,
    plugins          text NOT NULL,
    input            text NOT NULL,
    accepted_ms      bigint NOT NULL,
    idempotency_key  text COLLATE "C",
    derived_from     text,
    hop              bigint NOT NULL DEFAULT 0,
    status           text NOT NULL,
    started_ms       bigint,
    owner            text,
    claim_token      bigint,
    lease_until      timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    finished_at      timestamptz,
    record           text,
    output           text,
    UNIQUE (flow, idempotency_key)
);
CREATE INDEX runs_newest ON runs (accepted_ms DESC, run_id DESC);
CREATE INDEX runs_flow_newest ON runs (flow, accepted_ms DESC, run_id DESC);
CREATE INDEX runs_status_newest ON runs (status, accepted_ms DESC, run_id DESC);
CREATE INDEX runs_unfinished ON runs (accepted_ms, run_id) WHERE finished_at IS NULL;
CREATE INDEX runs_finished ON runs (finished_at, run_id) WHERE finished_at IS NOT NULL;

-- The journal: one row per step path, in the order first written (seq).
CREATE TABLE journal (
    seq    bigserial PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    path   text NOT NULL,
    entry  text NOT NULL,
    output text,
    UNIQUE (run_id, path)
);

CREATE TABLE blobs (
    hash   text PRIMARY KEY,
    bytes  bytea NOT NULL,
    put_at timestamptz NOT NULL
);
"#;

/// Version 2: steps' key-value state. Expiry is by the database's clock,
/// the same for every server of a fleet.
const V2: &str = r#"
CREATE TABLE kv (
    namespace  text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      text NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expiring ON kv (expires_at) WHERE expires_at IS NOT NULL;
"#;

/// Brings the database up to [`VERSION`]; `what` names it in errors.
pub(super) async fn migrate(client: &mut Client, what: &str) -> Result<(), StoreError> {
    let sql = |e| pg_error(what, e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql)?;
    let result = migrate_locked(client, what).await;
    // Closing the connection would release it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate_locked(client: &mut Client, what: &str) -> Result<(), StoreError> {
    let sql = |e| pg_error(what, e);
    let exists: bool = client
        .query_one("SELECT to_regclass('flowhost_schema') IS NOT NULL", &[])
        .await
        .map_err(sql)?
        .get(0);
    let version: i64 = if exists {
        let row = client
            .query_opt("SELECT max(version) FROM flowhost_schema", &[])
            .await
            .map_err(sql)?;
        row.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0)
    } else {
        0
    };
    if version > VERSION {
        return Err(StoreError::TooNew {
            path: what.to_string(),
            found: version,
            known: VERSION,
        });
    }
    if version == VERSION {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(sql)?;
    for step in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        tx.batch_execute(step).await.map_err(sql)?;
    }
    tx.execute("UPDATE flowhost_schema SET version = $1", &[&VERSION])
        .await
        .map_err(sql)?;
    tx.commit().await.map_err(sql)
}
