//! The `postgres://` store: runs in a PostgreSQL database that several
//! servers share, each one a worker of the fleet ([`Fleet`]).
//!
//! - [`open`]: connects (TLS per `sslmode`: [`tls`]), migrates under an
//!   advisory lock ([`schema`]), opens the pool.
//! - [`writer`]: one task commits every write in groups, each group one
//!   pipelined transaction; [`ops`] holds its statements.
//! - [`reads`]: runs, listings, journals, blobs, each on a pooled connection.
//! - [`fleet`]: claims under leases, renewals, releases, cancels.
//! - [`notices`]: one connection LISTENs for the fleet's notices.
//! - [`kv`]: steps' key-value state, on a pool of its own.
//!
//! Times that decide who holds a run (leases, finishes) are the database's
//! (`now()`), never a worker's clock. Inputs and outputs are TEXT as they
//! arrived; a finished run's record is stored without its output, the
//! output beside it. A finished run's journal stays until it is pruned.

mod fleet;
mod kv;
mod notices;
mod open;
mod ops;
mod reads;
mod schema;
pub(crate) mod tls;
mod url;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::kv::PgKv;
use self::ops::{FinishRow, RunRow, StepRow};
use self::reads::Reads;
pub use self::url::PgUrl;
use self::writer::{Counters, Done, Settings, Work, Writer};
use super::{
    Accepted, Fleet, ListQuery, NewRun, Notice, OpenOptions, Retention, RunPage, StepEntry, Store,
    StoreError, StoredRun, Unfinished, unix_ms,
};
use crate::executor::RunRecord;

/// How long writes are retried while the database is away before they fail
/// with [`StoreError::Unreachable`].
const WRITE_RETRY: Duration = Duration::from_secs(15);
/// How long `ready` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the usage figures are counted again.
const USAGE_EVERY: Duration = Duration::from_secs(5);
/// Finished runs removed per statement when pruning.
const PRUNE_CHUNK: i64 = 500;
/// Retention ages are capped at this (an interval must stay in range).
const MAX_AGE_SECS: f64 = 100.0 * 365.0 * 86400.0;

/// Runs in a shared PostgreSQL database. See the module docs.
#[derive(Debug)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

/// A claim this worker holds (or held, until it writes or releases).
#[derive(Debug, Clone, Copy)]
struct Held {
    token: i64,
    /// Another worker claimed the run: reported once by `renew`, kept so
    /// that this worker's writes about it stay fenced.
    lost: bool,
}

#[derive(Debug)]
struct Inner {
    what: String,
    reads: Reads,
    writer: Writer,
    kv: Arc<PgKv>,
    counters: Arc<Counters>,
    worker_id: String,
    lease: Duration,
    held: Mutex<HashMap<String, Held>>,
    notices: broadcast::Sender<Notice>,
    /// Finished runs counted by the last usage refresh, and the database's size.
    finished: AtomicU64,
    bytes: AtomicU64,
    /// Ends the notice and usage tasks with the store.
    _stop: DropGuard,
}

/// What the writer has done: figures for tests and benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteCounters {
    /// Transactions committed.
    pub transactions: u64,
    /// Writes committed.
    pub operations: u64,
    /// Round trips to the database the writer waited for.
    pub round_trips: u64,
}

impl PostgresStore {
    /// Opens the store at `url`: migrates an older schema (once, however
    /// many servers start together), refuses a newer one untouched, and
    /// answers [`StoreError::Unreachable`] when the database cannot be
    /// reached.
    pub async fn open(url: &PgUrl, options: &OpenOptions) -> Result<PostgresStore, StoreError> {
        Self::open_with(url, options, WRITE_RETRY).await
    }

    pub(crate) async fn open_with(
        url: &PgUrl,
        options: &OpenOptions,
        retry_for: Duration,
    ) -> Result<PostgresStore, StoreError> {
        let what = url.shown();
        let opened = open::open(url).await?;
        let stop = CancellationToken::new();
        let (notices, _) = broadcast::channel(1024);
        notices::listen(&opened, &what, notices.clone(), stop.clone()).await?;
        let reads = Reads {
            pool: opened.pool.clone(),
            what: what.clone(),
        };
        let kv = Arc::new(PgKv::new(&opened, &what)?);
        let (finished, bytes) = reads.usage().await?;
        let counters = Arc::new(Counters::default());
        let settings = Settings {
            what: what.clone(),
            capacity: options.queue_capacity,
            retry_for,
        };
        let writer = Writer::spawn(opened.pool.clone(), settings, counters.clone());
        let inner = Arc::new(Inner {
            what,
            reads,
            writer,
            kv,
            counters,
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            lease: options.lease,
            held: Mutex::default(),
            notices,
            finished: AtomicU64::new(finished),
            bytes: AtomicU64::new(bytes),
            _stop: stop.clone().drop_guard(),
        });
        tokio::spawn(count_usage(Arc::downgrade(&inner), stop));
        Ok(PostgresStore { inner })
    }

    /// What the writer has committed so far.
    pub fn write_counters(&self) -> WriteCounters {
        let c = &self.inner.counters;
        WriteCounters {
            transactions: c.transactions.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
            round_trips: c.round_trips.load(Ordering::Relaxed),
        }
    }
}

/// Counts the usage figures again every [`USAGE_EVERY`] while the store lives.
async fn count_usage(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(USAGE_EVERY) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Ok((finished, bytes)) = inner.reads.usage().await {
            inner.counters.finished.store(0, Ordering::Relaxed);
            inner.finished.store(finished, Ordering::Relaxed);
            inner.bytes.store(bytes, Ordering::Relaxed);
        }
    }
}

impl Inner {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts `runs`, each one flagged in `claims` claimed by this worker
    /// at once; answers each one's acceptance and whether it holds it now.
    fn accept(
        self: &Arc<Self>,
        runs: Vec<NewRun>,
        claims: Vec<bool>,
    ) -> BoxFuture<'static, Result<Vec<(Accepted, bool)>, StoreError>> {
        if runs.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        let owners = claims
            .iter()
            .map(|&c| c.then(|| self.worker_id.clone()))
            .collect();
        let queued = RunRow::all(runs).and_then(|runs| {
            self.enqueue(Work::Accept {
                runs,
                owners,
                lease: self.lease.as_secs_f64(),
            })
        });
        let inner = self.clone();
        Box::pin(async move {
            let answers = match queued?.await.map_err(|_| StoreError::Closed)?? {
                Done::Accepted(answers) => answers,
                Done::Applied(_) => {
                    return Err(StoreError::Backend(
                        "the store's writer answered a write to an accept".into(),
                    ));
                }
            };
            let mut held = inner.held();
            Ok(ids
                .into_iter()
                .zip(answers)
                .map(|(run_id, (answer, token))| match (&answer, token) {
                    (Accepted::New, Some(token)) => {
                        held.insert(run_id, Held { token, lost: false });
                        (answer, true)
                    }
                    _ => (answer, false),
                })
                .collect())
        })
    }

    /// The claim token this worker writes `run_id` under, if it holds one.
    fn token(&self, run_id: &str) -> Option<i64> {
        self.held().get(run_id).map(|h| h.token)
    }

    fn enqueue(
        &self,
        work: Work,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Done, StoreError>>, StoreError> {
        self.writer.enqueue(work)
    }
}

/// The answer of a fenced write: refused when made under a claim and it
/// changed nothing.
fn fenced(
    answer: Result<Result<Done, StoreError>, tokio::sync::oneshot::error::RecvError>,
    run_id: &str,
    token: Option<i64>,
) -> Result<bool, StoreError> {
    match answer.map_err(|_| StoreError::Closed)?? {
        Done::Applied(false) if token.is_some() => Err(StoreError::Fenced {
            run_id: run_id.to_string(),
        }),
        Done::Applied(applied) => Ok(applied),
        Done::Accepted(_) => Err(StoreError::Backend(
            "the store's writer answered an accept to a write".into(),
        )),
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.inner.what.clone()
    }

    fn durable(&self) -> bool {
        true
    }

    fn accept(&self, runs: Vec<NewRun>) -> BoxFuture<'static, Result<Vec<Accepted>, StoreError>> {
        if runs.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let claims = vec![false; runs.len()];
        let accepting = self.inner.accept(runs, claims);
        Box::pin(async move {
            Ok(accepting
                .await?
                .into_iter()
                .map(|(answer, _)| answer)
                .collect())
        })
    }

    async fn started(&self, run_id: &str, at: SystemTime) -> Result<(), StoreError> {
        let token = self.inner.token(run_id);
        let answer = self.inner.enqueue(Work::Started {
            run_id: run_id.to_string(),
            at_ms: unix_ms::from(at),
            token,
        })?;
        fenced(answer.await, run_id, token).map(drop)
    }

    fn journal(
        &self,
        run_id: &str,
        entry: StepEntry,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let token = self.inner.token(run_id);
        let queued = StepRow::new(run_id, entry)
            .and_then(|row| self.inner.enqueue(Work::Journal { row, token }));
        let run_id = run_id.to_string();
        Box::pin(async move { fenced(queued?.await, &run_id, token).map(drop) })
    }

    async fn finish(&self, record: Arc<RunRecord>) -> Result<(), StoreError> {
        let run_id = record.run_id.as_str();
        let token = self.inner.token(run_id);
        let row = FinishRow::new(&record)?;
        let answer = self.inner.enqueue(Work::Finish { row, token })?.await;
        let result = fenced(answer, run_id, token);
        // A fenced run stays held (lost) until released: this worker's
        // later writes about it stay fenced.
        if result.is_ok() {
            self.inner.held().remove(run_id);
        }
        result.map(drop)
    }

    async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.inner.reads.unfinished().await
    }

    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>, StoreError> {
        self.inner.reads.run(run_id).await
    }

    async fn replay_source(
        &self,
        run_id: &str,
    ) -> Result<Option<(NewRun, Vec<StepEntry>)>, StoreError> {
        self.inner.reads.replay_source(run_id).await
    }

    async fn list(&self, query: ListQuery) -> Result<RunPage, StoreError> {
        self.inner.reads.list(&query).await
    }

    /// Removes finished runs that finished more than `max_age` ago (by the
    /// database's clock) or are beyond the `max_runs` most recently
    /// finished, [`PRUNE_CHUNK`] per statement, then the blobs no
    /// unfinished run refers to.
    async fn prune(&self, retention: Retention) -> Result<usize, StoreError> {
        let reads = &self.inner.reads;
        let max_age = retention.max_age.as_secs_f64().min(MAX_AGE_SECS);
        let keep = i64::try_from(retention.max_runs).unwrap_or(i64::MAX);
        let client = reads.client().await?;
        let bound = client
            .query_opt(
                "SELECT finished_at, run_id FROM runs WHERE finished_at IS NOT NULL
                 ORDER BY finished_at DESC, run_id DESC OFFSET $1 LIMIT 1",
                &[&keep],
            )
            .await
            .map_err(|e| reads.sql(e))?;
        let (at, id): (Option<SystemTime>, Option<String>) = match &bound {
            Some(row) => (Some(row.get(0)), Some(row.get(1))),
            None => (None, None),
        };
        let chunk = client
            .prepare(
                "WITH victims AS (
                    SELECT run_id FROM runs WHERE finished_at IS NOT NULL
                       AND (finished_at < now() - make_interval(secs => $1)
                            OR ($2::timestamptz IS NOT NULL AND (finished_at, run_id) <= ($2, $3::text)))
                     ORDER BY finished_at, run_id LIMIT $4),
                 steps AS (DELETE FROM journal WHERE run_id IN (SELECT run_id FROM victims)),
                 gone AS (DELETE FROM runs WHERE run_id IN (SELECT run_id FROM victims) RETURNING 1)
                 SELECT count(*) FROM gone",
            )
            .await
            .map_err(|e| reads.sql(e))?;
        let mut removed = 0;
        loop {
            let n: i64 = client
                .query_one(&chunk, &[&max_age, &at, &id, &PRUNE_CHUNK])
                .await
                .map_err(|e| reads.sql(e))?
                .get(0);
            removed += usize::try_from(n).unwrap_or(0);
            if n < PRUNE_CHUNK {
                break;
            }
        }
        client
            .execute(
                "DELETE FROM blobs WHERE put_at < now() - make_interval(secs => $1)
                   AND hash NOT IN (SELECT flow_version FROM runs WHERE finished_at IS NULL)
                   AND hash NOT IN (SELECT p.value FROM runs r, json_each_text(r.plugins::json) p
                                    WHERE r.finished_at IS NULL)",
                &[&max_age],
            )
            .await
            .map_err(|e| reads.sql(e))?;
        // Expired key-value entries are invisible already: a failed sweep
        // only leaves them for the next one.
        if let Err(e) = self.inner.kv.sweep(crate::kv::SWEEP_LIMIT).await {
            tracing::warn!(target: "flowhost::kv", "expired key-value entries not swept: {e}");
        }
        Ok(removed)
    }

    /// Renews the time of a blob already kept (its bytes are not sent
    /// again), else inserts it.
    async fn put_blob(&self, hash: &str, bytes: Arc<[u8]>) -> Result<(), StoreError> {
        let reads = &self.inner.reads;
        let client = reads.client().await?;
        let renewed = client
            .execute("UPDATE blobs SET put_at = now() WHERE hash = $1", &[&hash])
            .await
            .map_err(|e| reads.sql(e))?;
        if renewed == 0 {
            client
                .execute(
                    "INSERT INTO blobs (hash, bytes, put_at) VALUES ($1, $2, now())
                     ON CONFLICT (hash) DO UPDATE SET put_at = now()",
                    &[&hash, &&bytes[..]],
                )
                .await
                .map_err(|e| reads.sql(e))?;
        }
        Ok(())
    }

    async fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.reads.blob(hash).await
    }

    fn kv(&self) -> Arc<dyn crate::kv::KvStore> {
        self.inner.kv.clone()
    }

    fn fleet(&self) -> Option<Arc<dyn Fleet>> {
        Some(Arc::new(fleet::PgFleet {
            inner: self.inner.clone(),
        }))
    }

    /// Answers within [`READY_TIMEOUT`]: a pooled connection that answers
    /// a query.
    async fn ready(&self) -> Result<(), StoreError> {
        let reads = &self.inner.reads;
        let check = async {
            let client = reads.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| reads.sql(e))?;
            Ok(())
        };
        match tokio::time::timeout(READY_TIMEOUT, check).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unreachable {
                what: self.inner.what.clone(),
                why: format!("no answer within {}s", READY_TIMEOUT.as_secs()),
            }),
        }
    }

    fn usage(&self) -> (usize, u64) {
        let inner = &self.inner;
        let finished = inner.finished.load(Ordering::Relaxed)
            + inner.counters.finished.load(Ordering::Relaxed);
        (
            usize::try_from(finished).unwrap_or(usize::MAX),
            inner.bytes.load(Ordering::Relaxed),
        )
    }
}
