//! The writes as SQL: rows the caller serialised, and the statement each
//! write sends in the writer's pipeline. Every statement has the effect of
//! once when sent twice (see [`super::writer`]).
//!
//! Fenced writes (`token` set) change their row only while it still holds
//! that claim token; a claim takes a new token from a sequence, so a worker
//! whose run was claimed by another after its lease expired changes
//! nothing, and is told ([`StoreError::Fenced`](crate::store::StoreError::Fenced)).
//! Writes without a token (no claim held: the contract's single-server
//! use, the CLI) change a run only while no worker holds it.

use deadpool_postgres::Object;
use futures::future::BoxFuture;
use tokio_postgres::{Row, Statement};

use super::writer::Work;
use crate::executor::RunStatus;
pub(super) use crate::store::rows::{FinishRow, RunRow, StepRow};

/// What one pipelined statement gave.
pub(super) enum Out {
    Nothing,
    Count(u64),
    Rows(Vec<Row>),
}

/// One statement of a pipeline.
pub(super) type Step<'a> = BoxFuture<'a, Result<Out, tokio_postgres::Error>>;

/// Taken before counting the queue: accepts take turns fleet-wide.
const ACCEPT_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

/// The waiting runs: unfinished and held by no live claim (queued, or left
/// by a worker whose lease expired); the group's own left out (a group sent
/// again after its commit must not count its runs twice).
const COUNT_WAITING: &str = "SELECT count(*) FROM runs
    WHERE finished_at IS NULL AND (owner IS NULL OR lease_until < now())
      AND run_id <> ALL($1::text[])";

/// Inserts a run, answering the id of the run it is: its own, or the one
/// holding its idempotency key; claimed at once by owner `$10` when given,
/// answering its claim token. The accept lock makes the reads see every
/// committed accept.
const INSERT_RUN: &str = "
WITH ins AS (
    INSERT INTO runs (run_id, flow, flow_version, plugins, input, accepted_ms,
                      idempotency_key, derived_from, hop, status,
                      owner, claim_token, lease_until)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10::text,
            CASE WHEN $10::text IS NULL THEN NULL ELSE nextval('claim_tokens') END,
            CASE WHEN $10::text IS NULL THEN NULL
                 ELSE now() + make_interval(secs => $11::float8) END)
    ON CONFLICT DO NOTHING
    RETURNING run_id, claim_token)
SELECT run_id, claim_token, 0 AS rank FROM ins
UNION ALL
SELECT run_id, CASE WHEN owner = $10::text THEN claim_token END, 1 FROM runs
 WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)
UNION ALL
SELECT run_id, NULL::int8, 2 FROM runs
 WHERE flow = $2 AND idempotency_key = $7 AND NOT EXISTS (SELECT 1 FROM ins)
ORDER BY rank LIMIT 1";

/// Whether a write made under `$token` (or under none) may change the row.
macro_rules! fenced {
    ($token:literal) => {
        concat!(
            "(claim_token = ",
            $token,
            "::int8 OR (",
            $token,
            "::int8 IS NULL AND owner IS NULL AND finished_at IS NULL))"
        )
    };
}

const STARTED: &str = concat!(
    "UPDATE runs SET started_ms = coalesce(started_ms, $2),
        status = CASE WHEN finished_at IS NULL THEN 'running' ELSE status END
     WHERE run_id = $1 AND ",
    fenced!("$3")
);

/// Replaces the entry at the same path, which keeps its place (`seq`).
const JOURNAL: &str = concat!(
    "INSERT INTO journal (run_id, path, entry, output)
     SELECT $1::text, $2::text, $3::text, $4::text FROM runs WHERE run_id = $1 AND ",
    fenced!("$5"),
    " ON CONFLICT (run_id, path) DO UPDATE SET entry = excluded.entry, output = excluded.output"
);

/// Records a run's end and tells the fleet, in the same transaction.
const FINISH: &str = concat!(
    "WITH u AS (
        UPDATE runs SET status = $2, record = $3, output = $4,
               finished_at = coalesce(finished_at, now()), owner = NULL, lease_until = NULL
         WHERE run_id = $1 AND ",
    fenced!("$5"),
    " RETURNING run_id)
     SELECT pg_notify('flowhost', 'finished ' || run_id) FROM u"
);

/// Finishes a run nobody holds (no owner, or its lease expired). A new token
/// fences out the worker whose lease expired.
const FINISH_UNCLAIMED: &str = "
WITH u AS (
    UPDATE runs SET status = $2, record = $3, output = $4, finished_at = now(),
           owner = NULL, lease_until = NULL, claim_token = nextval('claim_tokens')
     WHERE run_id = $1 AND finished_at IS NULL AND (owner IS NULL OR lease_until < now())
    RETURNING run_id)
SELECT pg_notify('flowhost', 'finished ' || run_id) FROM u";

const CANCEL: &str = "
WITH u AS (
    UPDATE runs SET cancel_requested = true WHERE run_id = $1 AND finished_at IS NULL
    RETURNING run_id)
SELECT pg_notify('flowhost', 'cancel ' || run_id) FROM u";

/// The writer's statements, prepared once per connection (the pool's
/// statement cache keeps them). Pipelined statements must be prepared:
/// one given as text is prepared first, in a round trip of its own, and
/// would leave after the statements behind it.
pub(super) struct Statements {
    pub(super) accept_lock: Statement,
    pub(super) count_unfinished: Statement,
    insert_run: Statement,
    started: Statement,
    journal: Statement,
    finish: Statement,
    finish_unclaimed: Statement,
    cancel: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Object) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            accept_lock: client.prepare_cached(ACCEPT_LOCK).await?,
            count_unfinished: client.prepare_cached(COUNT_WAITING).await?,
            insert_run: client.prepare_cached(INSERT_RUN).await?,
            started: client.prepare_cached(STARTED).await?,
            journal: client.prepare_cached(JOURNAL).await?,
            finish: client.prepare_cached(FINISH).await?,
            finish_unclaimed: client.prepare_cached(FINISH_UNCLAIMED).await?,
            cancel: client.prepare_cached(CANCEL).await?,
        })
    }
}

/// The statements `work` sends: one per run for an accept, else one.
pub(super) fn statements<'a>(
    client: &'a Object,
    stmts: &'a Statements,
    work: &'a Work,
) -> Vec<Step<'a>> {
    let rows = |stmt: &'a Statement,
                params: Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>|
     -> Step<'a> {
        Box::pin(async move { client.query(stmt, &params).await.map(Out::Rows) })
    };
    let count = |stmt: &'a Statement,
                 params: Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>|
     -> Step<'a> {
        Box::pin(async move { client.execute(stmt, &params).await.map(Out::Count) })
    };
    match work {
        Work::Accept {
            runs,
            owners,
            lease,
        } => runs
            .iter()
            .zip(owners)
            .map(|(r, owner)| {
                rows(
                    &stmts.insert_run,
                    vec![
                        &r.run_id,
                        &r.flow,
                        &r.flow_version,
                        &r.plugins,
                        &r.input,
                        &r.accepted_ms,
                        &r.idempotency_key,
                        &r.derived_from,
                        &r.hop,
                        owner,
                        lease,
                    ],
                )
            })
            .collect(),
        Work::Started {
            run_id,
            at_ms,
            token,
        } => vec![count(&stmts.started, vec![run_id, at_ms, token])],
        Work::Journal { row, token } => vec![count(
            &stmts.journal,
            vec![&row.run_id, &row.path, &row.entry, &row.output, token],
        )],
        Work::Finish { row, token } => vec![rows(
            &stmts.finish,
            vec![
                &row.run_id,
                status_word(row),
                &row.record,
                &row.output,
                token,
            ],
        )],
        Work::FinishUnclaimed(row) => vec![rows(
            &stmts.finish_unclaimed,
            vec![&row.run_id, status_word(row), &row.record, &row.output],
        )],
        Work::Cancel(run_id) => vec![rows(&stmts.cancel, vec![run_id])],
    }
}

/// The status word of a finished run, as stored.
fn status_word(row: &FinishRow) -> &'static (dyn tokio_postgres::types::ToSql + Sync) {
    match row.status {
        RunStatus::Queued => &"queued",
        RunStatus::Running => &"running",
        RunStatus::Succeeded => &"succeeded",
        RunStatus::Failed => &"failed",
        RunStatus::Cancelled => &"cancelled",
    }
}
