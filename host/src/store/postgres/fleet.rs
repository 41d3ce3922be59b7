//! The fleet side: claims under leases, their renewal and release, and the
//! writes about runs nobody holds.
//!
//! A claim is one transaction: the advisory locks of the limited flows (in
//! key order, so that claimers never deadlock), the count of each one's
//! held runs, the oldest claimable runs `FOR UPDATE SKIP LOCKED` (so that
//! claimers never wait for each other's rows), and their update to this
//! worker with a new claim token and a lease of the database's time. Two
//! claimers of one limited flow take turns on its lock, and the second
//! counts what the first claimed: the limit holds fleet-wide.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;

use super::reads::RUN_COLUMNS;
use super::writer::{Done, Work};
use super::{Held, Inner};
use crate::executor::RunRecord;
use crate::store::rows::{FinishRow, RUN_COLUMN_COUNT};
use crate::store::{Fleet, Notice, StoreError, Unfinished};

/// The fleet view of a [`PostgresStore`](super::PostgresStore).
#[derive(Debug)]
pub(super) struct PgFleet {
    pub(super) inner: Arc<Inner>,
}

/// The advisory lock key of a flow's claims: stable across processes.
fn flow_key(flow: &str) -> i64 {
    let digest = Sha256::digest(format!("flowhost claim {flow}"));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl PgFleet {
    /// This worker's held claims that are not lost: (run ids, tokens).
    fn holding(&self, only: Option<&[String]>) -> (Vec<String>, Vec<i64>) {
        self.inner
            .held()
            .iter()
            .filter(|(id, h)| !h.lost && only.is_none_or(|o| o.contains(id)))
            .map(|(id, h)| (id.clone(), h.token))
            .unzip()
    }

    /// Claims up to `max` runs (only `only`, when given), as [`Fleet::claim`] says.
    async fn claim_some(
        &self,
        max: usize,
        limits: &HashMap<String, u32>,
        only: Option<&str>,
    ) -> Result<Vec<Unfinished>, StoreError> {
        let reads = &self.inner.reads;
        let sql = |e| reads.sql(e);
        let mut client = reads.client().await?;
        let tx = client.transaction().await.map_err(sql)?;
        if max == 0 {
            self.count_waiting(&tx).await?;
            tx.commit().await.map_err(sql)?;
            return Ok(Vec::new());
        }
        let mut limited: Vec<(i64, &str, usize)> = limits
            .iter()
            .map(|(flow, n)| (flow_key(flow), flow.as_str(), *n as usize))
            .collect();
        limited.sort();
        let mut room: HashMap<&str, usize> = HashMap::new();
        if !limited.is_empty() {
            let keys: Vec<i64> = limited.iter().map(|l| l.0).collect();
            let flows: Vec<&str> = limited.iter().map(|l| l.1).collect();
            // The count is a statement after the locks: its snapshot sees
            // every claim committed before they were granted.
            // Prepared first: pipelined, the count must leave after the locks.
            let lock = tx
                .prepare_cached("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
                .await
                .map_err(sql)?;
            let count = tx
                .prepare_cached(
                    "SELECT flow, count(*) FROM runs
                     WHERE finished_at IS NULL AND owner IS NOT NULL AND lease_until >= now()
                       AND flow = ANY($1::text[])
                     GROUP BY flow",
                )
                .await
                .map_err(sql)?;
            let (lock_args, count_args): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
                ([&keys], [&flows]);
            let (_, held) =
                futures::try_join!(tx.execute(&lock, &lock_args), tx.query(&count, &count_args),)
                    .map_err(sql)?;
            let held: HashMap<String, i64> = held.iter().map(|r| (r.get(0), r.get(1))).collect();
            for (_, flow, limit) in &limited {
                let n = held.get(*flow).copied().unwrap_or(0).max(0) as usize;
                room.insert(flow, limit.saturating_sub(n));
            }
        }
        let full: Vec<&str> = room
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(f, _)| *f)
            .collect();
        let candidates = tx
            .query(
                "SELECT run_id, flow FROM runs
                 WHERE finished_at IS NULL AND (owner IS NULL OR lease_until < now())
                   AND flow <> ALL($1::text[]) AND ($3::text IS NULL OR run_id = $3)
                 ORDER BY accepted_ms, run_id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&full, &i64::try_from(max).unwrap_or(i64::MAX), &only],
            )
            .await
            .map_err(sql)?;
        let mut ids = Vec::new();
        for row in &candidates {
            let flow: &str = row.get(1);
            if let Some(left) = room.get_mut(flow) {
                if *left == 0 {
                    continue;
                }
                *left -= 1;
            }
            ids.push(row.get::<_, String>(0));
        }
        if ids.is_empty() {
            self.count_waiting(&tx).await?;
            tx.commit().await.map_err(sql)?;
            return Ok(Vec::new());
        }
        let lease = self.inner.lease.as_secs_f64();
        let update = format!(
            "UPDATE runs SET owner = $1, claim_token = nextval('claim_tokens'),
                    lease_until = now() + make_interval(secs => $2)
             WHERE run_id = ANY($3::text[])
             RETURNING {RUN_COLUMNS}, cancel_requested, claim_token"
        );
        let update_args: [&(dyn ToSql + Sync); 3] = [&self.inner.worker_id, &lease, &ids];
        let journal_args: [&(dyn ToSql + Sync); 1] = [&ids];
        let (runs, steps) = futures::try_join!(
            tx.query(&update, &update_args),
            tx.query(
                "SELECT run_id, path, entry, output FROM journal
                 WHERE run_id = ANY($1::text[]) ORDER BY seq",
                &journal_args,
            ),
        )
        .map_err(sql)?;
        self.count_waiting(&tx).await?;
        tx.commit().await.map_err(sql)?;
        let tokens: Vec<(String, i64)> = runs
            .iter()
            .map(|r| (r.get(0), r.get(RUN_COLUMN_COUNT + 1)))
            .collect();
        {
            let mut held = self.inner.held();
            for (run_id, token) in tokens {
                held.insert(run_id, Held { token, lost: false });
            }
        }
        let mut claimed = reads.assemble(&runs, &steps)?;
        claimed.sort_by(|a, b| {
            (a.run.accepted_at, &a.run.run_id).cmp(&(b.run.accepted_at, &b.run.run_id))
        });
        Ok(claimed)
    }

    /// Counts the runs waiting for a claim, as `tx` sees them (its own
    /// claims made): the figure [`Fleet::waiting`] gives until the next.
    async fn count_waiting(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
        let row = tx
            .query_one(
                "SELECT count(*) FROM runs
                 WHERE finished_at IS NULL AND (owner IS NULL OR lease_until < now())",
                &[],
            )
            .await
            .map_err(|e| self.inner.reads.sql(e))?;
        let n: i64 = row.get(0);
        self.inner.counters.waiting.store(
            u64::try_from(n).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    async fn write(&self, work: Work) -> Result<bool, StoreError> {
        match self
            .inner
            .enqueue(work)?
            .await
            .map_err(|_| StoreError::Closed)??
        {
            Done::Applied(applied) => Ok(applied),
            Done::Accepted(_) => Err(StoreError::Backend(
                "the store's writer answered an accept to a write".into(),
            )),
        }
    }
}

#[async_trait::async_trait]
impl Fleet for PgFleet {
    fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    fn lease(&self) -> Duration {
        self.inner.lease
    }

    fn accept_claiming(
        &self,
        runs: Vec<crate::store::NewRun>,
        claims: Vec<bool>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<(crate::store::Accepted, bool)>, StoreError>>
    {
        self.inner.accept(runs, claims)
    }

    async fn claim(
        &self,
        max: usize,
        limits: &HashMap<String, u32>,
    ) -> Result<Vec<Unfinished>, StoreError> {
        self.claim_some(max, limits, None).await
    }

    async fn claim_run(
        &self,
        run_id: &str,
        limits: &HashMap<String, u32>,
    ) -> Result<Option<Unfinished>, StoreError> {
        Ok(self.claim_some(1, limits, Some(run_id)).await?.pop())
    }

    async fn renew(&self) -> Result<Vec<String>, StoreError> {
        let (ids, tokens) = self.holding(None);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let reads = &self.inner.reads;
        let client = reads.client().await?;
        let kept = client
            .query(
                "UPDATE runs r SET lease_until = now() + make_interval(secs => $3)
                 FROM unnest($1::text[], $2::int8[]) AS h(run_id, token)
                 WHERE r.run_id = h.run_id AND r.claim_token = h.token
                 RETURNING r.run_id",
                &[&ids, &tokens, &self.inner.lease.as_secs_f64()],
            )
            .await
            .map_err(|e| reads.sql(e))?;
        let kept: HashSet<String> = kept.iter().map(|r| r.get(0)).collect();
        let mut lost = Vec::new();
        let mut held = self.inner.held();
        for (run_id, token) in ids.into_iter().zip(tokens) {
            if kept.contains(&run_id) {
                continue;
            }
            // A claim taken again meanwhile has a new token: not lost.
            if let Some(h) = held.get_mut(&run_id)
                && h.token == token
            {
                h.lost = true;
                lost.push(run_id);
            }
        }
        Ok(lost)
    }

    async fn release(&self, run_ids: &[String]) -> Result<(), StoreError> {
        let (ids, tokens) = self.holding(Some(run_ids));
        // Forgotten first, lost or not: this worker no longer renews them,
        // so if the database cannot be told now, their leases expire.
        self.inner.held().retain(|id, _| !run_ids.contains(id));
        if ids.is_empty() {
            return Ok(());
        }
        let reads = &self.inner.reads;
        let client = reads.client().await?;
        client
            .query(
                "WITH u AS (
                    UPDATE runs r SET owner = NULL, lease_until = NULL
                    FROM unnest($1::text[], $2::int8[]) AS h(run_id, token)
                    WHERE r.run_id = h.run_id AND r.claim_token = h.token
                      AND r.finished_at IS NULL
                    RETURNING 1)
                 SELECT pg_notify('flowhost', 'queued') WHERE EXISTS (SELECT 1 FROM u)",
                &[&ids, &tokens],
            )
            .await
            .map_err(|e| reads.sql(e))?;
        Ok(())
    }

    async fn finish_unclaimed(&self, record: Arc<RunRecord>) -> Result<bool, StoreError> {
        self.write(Work::FinishUnclaimed(FinishRow::new(&record)?))
            .await
    }

    async fn request_cancel(&self, run_id: &str) -> Result<(), StoreError> {
        self.write(Work::Cancel(run_id.to_string())).await.map(drop)
    }

    fn waiting(&self) -> usize {
        let n = self
            .inner
            .counters
            .waiting
            .load(std::sync::atomic::Ordering::Relaxed);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }
}
