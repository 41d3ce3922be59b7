//! The writes, as SQL: each runs inside the writer's transaction (in its own
//! savepoint) on rows the caller already serialised, so the writer thread
//! spends its time on SQLite alone.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::executor::RunStatus;
use crate::store::Accepted;
pub(super) use crate::store::rows::{FinishRow, RunRow, StepRow};

/// Finished runs at or before this position in (finished at, rowid) order
/// are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PruneBound {
    pub(super) finished_ms: i64,
    pub(super) rowid: i64,
}

/// What a write changed besides its rows, applied to the cached usage
/// once its transaction commits.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Change in the number of finished runs.
    pub(super) finished: i64,
}

/// Inserts `runs`; a run whose idempotency key its flow already used is
/// answered with that run instead.
pub(super) fn accept(conn: &Connection, runs: &[RunRow]) -> rusqlite::Result<Vec<Accepted>> {
    let mut find =
        conn.prepare_cached("SELECT run_id FROM runs WHERE flow = ?1 AND idempotency_key = ?2")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO runs (run_id, flow, flow_version, plugins, input, accepted_ms, status,
                           idempotency_key, derived_from, hop)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut answers = Vec::with_capacity(runs.len());
    for run in runs {
        if let Some(key) = &run.idempotency_key {
            let existing: Option<String> = find
                .query_row(params![run.flow, key], |r| r.get(0))
                .optional()?;
            if let Some(run_id) = existing {
                answers.push(Accepted::Existing { run_id });
                continue;
            }
        }
        insert.execute(params![
            run.run_id,
            run.flow,
            run.flow_version,
            run.plugins,
            &*run.input,
            run.accepted_ms,
            RunStatus::Queued.as_str(),
            run.idempotency_key,
            run.derived_from,
            run.hop,
        ])?;
        answers.push(Accepted::New);
    }
    Ok(answers)
}

/// Marks an unfinished run running; its first start time is kept.
pub(super) fn started(conn: &Connection, run_id: &str, at_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET status = ?3, started_ms = coalesce(started_ms, ?2)
         WHERE run_id = ?1 AND finished_ms IS NULL",
    )?
    .execute(params![run_id, at_ms, RunStatus::Running.as_str()])?;
    Ok(())
}

/// Writes a journal entry of an unfinished run, replacing the one at the
/// same path (which keeps its place in the order).
pub(super) fn journal(conn: &Connection, step: &StepRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO steps (run_id, path, entry, output)
         SELECT ?1, ?2, ?3, ?4
         WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND finished_ms IS NULL)
         ON CONFLICT (run_id, path) DO UPDATE SET entry = excluded.entry, output = excluded.output",
    )?
    .execute(params![
        step.run_id,
        step.path,
        step.entry,
        step.output.as_deref()
    ])?;
    Ok(())
}

/// Stores a run's final record. Its journal stays until the run is pruned:
/// a rerun from a step reuses the results before that step.
pub(super) fn finish(
    conn: &Connection,
    row: &FinishRow,
    effects: &mut Effects,
) -> rusqlite::Result<()> {
    let was: Option<Option<i64>> = conn
        .prepare_cached("SELECT finished_ms FROM runs WHERE run_id = ?1")?
        .query_row([&row.run_id], |r| r.get(0))
        .optional()?;
    let Some(was) = was else {
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, record = ?3, output = ?4,
                         finished_ms = coalesce(finished_ms, ?5)
         WHERE run_id = ?1",
    )?
    .execute(params![
        row.run_id,
        row.status.as_str(),
        row.record,
        row.output.as_deref(),
        row.finished_ms
    ])?;
    if was.is_none() {
        effects.finished += 1;
    }
    Ok(())
}

/// The finished runs at or before the bound, oldest first.
const PRUNED: &str = "SELECT rowid FROM runs
     WHERE finished_ms IS NOT NULL AND (finished_ms < ?1 OR (finished_ms = ?1 AND rowid <= ?2))
     ORDER BY finished_ms, rowid LIMIT ?3";

/// Removes up to `limit` finished runs at or before `bound`, with their
/// journals; returns how many.
pub(super) fn prune_runs(
    conn: &Connection,
    bound: PruneBound,
    limit: usize,
    effects: &mut Effects,
) -> rusqlite::Result<usize> {
    let args = params![bound.finished_ms, bound.rowid, limit as i64];
    conn.prepare_cached(&format!(
        "DELETE FROM steps WHERE run_id IN (SELECT run_id FROM runs WHERE rowid IN ({PRUNED}))"
    ))?
    .execute(args)?;
    let removed = conn
        .prepare_cached(&format!("DELETE FROM runs WHERE rowid IN ({PRUNED})"))?
        .execute(args)?;
    effects.finished -= removed as i64;
    Ok(removed)
}

/// At most this many free pages go back to the file system per prune.
const VACUUM_PAGES: i64 = 4096;

/// Removes the blobs put before `before_ms` that no unfinished run refers
/// to, then gives some free pages back; returns how many blobs went.
pub(super) fn prune_blobs(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM blobs WHERE put_ms < ?1
             AND hash NOT IN (SELECT flow_version FROM runs WHERE finished_ms IS NULL)
             AND hash NOT IN (SELECT p.value FROM runs r, json_each(r.plugins) p
                              WHERE r.finished_ms IS NULL)",
        )?
        .execute([before_ms])?;
    conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
    Ok(removed)
}

/// Keeps `bytes` under `hash` once; putting it again only renews its time.
pub(super) fn put_blob(
    conn: &Connection,
    hash: &str,
    bytes: &Arc<[u8]>,
    at_ms: i64,
) -> rusqlite::Result<()> {
    let renewed = conn
        .prepare_cached("UPDATE blobs SET put_ms = max(put_ms, ?2) WHERE hash = ?1")?
        .execute(params![hash, at_ms])?;
    if renewed == 0 {
        conn.prepare_cached("INSERT INTO blobs (hash, bytes, put_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![hash, &bytes[..], at_ms])?;
    }
    Ok(())
}
